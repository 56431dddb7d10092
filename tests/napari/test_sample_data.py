"""The sample "EM pair (FlyEM FIB-SEM)": small, credited, and LR / HR overlay in world coordinates."""

import numpy as np

from napari_emsr.samples import SAMPLE_FOLDER


def test_sample_files_are_small_and_credited():
    files = [f for f in SAMPLE_FOLDER.iterdir() if f.is_file()]
    assert sum(len(f.read_bytes()) for f in files) < 10 * 2**20
    credits = (SAMPLE_FOLDER / "CREDITS.md").read_text()
    assert "FlyEM project, Janelia Research Campus (HHMI)" in credits and "Attribution 3.0" in credits
    assert "Modified" in credits


def test_open_sample_overlays_lr_and_hr(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-emsr", "em_pair")
    lr, hr = viewer.layers["EM LR 30 nm"], viewer.layers["EM HR 10 nm"]
    assert lr.data.shape == (16, 173, 173) and hr.data.shape == (16, 240, 240)
    np.testing.assert_allclose(lr.scale, (10, 30, 30))
    np.testing.assert_allclose(hr.scale, (10, 10, 10))
    lr_box, hr_box = lr.extent.world[:, 1:], hr.extent.world[:, 1:]
    assert np.all(hr_box[0] > lr_box[0]) and np.all(hr_box[1] < lr_box[1])  # HR: a smaller field inside
    assert "CC BY 3.0" in lr.metadata["napari_emsr"]["credit"]

    # Where they overlay, 3 x 3 means of HR match LR (a degraded copy): pick the LR pixels whose
    # centres fall on HR pixel centres, via the world coordinates only.
    first = np.round(hr.world_to_data(lr.data_to_world((0, 50, 50)))).astype(int)  # HR pixel under LR (50, 50)
    y, x = first[1] - 1, first[2] - 1
    blocks = hr.data[:, y : y + 3 * 60, x : x + 3 * 60].reshape(16, 60, 3, 60, 3).mean(axis=(2, 4)).ravel()

    def match(dy, dx):
        return np.corrcoef(blocks, lr.data[:, 50 + dy : 110 + dy, 50 + dx : 110 + dx].astype(float).ravel())[0, 1]

    aligned = match(0, 0)  # the LR is noisy (shot, scan-line and read noise): ~0.74
    assert aligned > 0.7
    assert all(aligned > match(dy, dx) + 0.05 for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)))
