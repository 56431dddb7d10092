"""Real LR/HR pairs: integer ratio, locating the HR field inside the LR field, contrast matching."""

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr.resample import resize
from napari_emsr.training.degrade import em_like
from napari_emsr.training.pairs import PairError, integer_ratio, prepare_pair


@pytest.fixture(scope="module")
def acquisition(data_dir):
    """LR: an EM-like x3 acquisition (30 nm) of 12 training slices; HR: the original 10 nm images."""
    files = sorted((data_dir / "training_sample1").glob("*.png"))[100:112]
    hr_full = np.stack([imread(f) for f in files]).astype(np.float32)
    lr = em_like(torch.from_numpy(hr_full / 255)[:, None], 3, torch.Generator().manual_seed(0))[:, 0].numpy()
    return (np.clip(lr, 0, 1) * 255).astype(np.uint8), hr_full


def test_integer_ratio():
    assert integer_ratio(50, 15) == (3, pytest.approx(3.333, abs=1e-3))
    assert integer_ratio(30, 10)[0] == 3
    with pytest.raises(PairError, match="outside the x1..x4"):
        integer_ratio(100, 10)


def test_finds_the_hr_field(acquisition):
    lr, hr_full = acquisition
    hr = hr_full[2:10, 60:210, 45:216]  # a small field: LR (z, y, x) = (2, 20, 15), 50 x 57 LR px
    lr_part, hr_part, report = prepare_pair(lr, hr, lr_pixel_nm=30, hr_pixel_nm=10)
    assert report.offset == (2, 20, 15) and report.located
    assert report.score > 0.8 and report.scale == 3
    assert lr_part.shape == (8, 50, 57) and hr_part.shape == (8, 150, 171)
    assert abs(report.gain - 1) < 0.05


def test_non_integer_ratio_is_resized_and_said(acquisition):
    lr, hr_full = acquisition
    hr = resize(hr_full[2:10, 60:210, 45:216], (180, 205))  # as if imaged at 8.33 nm: ratio 3.6 -> x4
    lr_part, hr_part, report = prepare_pair(lr, hr, lr_pixel_nm=30, hr_pixel_nm=10 * 150 / 180)
    assert report.scale == 4  # 3.6 rounds to 4: HR resized to 7.5 nm
    assert any("not an integer" in note and "resized" in note for note in report.notes)
    assert hr_part.shape[1:] == (lr_part.shape[1] * 4, lr_part.shape[2] * 4)
    assert report.offset[1:] == pytest.approx((20, 15), abs=1)


def test_contrast_is_matched(acquisition):
    lr, hr_full = acquisition
    hr = 0.5 * hr_full[2:10, 60:210, 45:216] + 40  # another detector gain and offset
    _, hr_part, report = prepare_pair(lr, hr, lr_pixel_nm=30, hr_pixel_nm=10)
    assert report.gain == pytest.approx(2.0, rel=0.1)
    assert any("intensities mapped" in note for note in report.notes)
    assert abs(hr_part.mean() - lr[2:10, 20:70, 15:72].mean()) < 3


def test_given_offset_and_bad_offset(acquisition):
    lr, hr_full = acquisition
    hr = hr_full[2:10, 60:210, 45:216]
    _, _, report = prepare_pair(lr, hr, scale=3, offset=(2, 20, 15))
    assert not report.located and report.score > 0.8
    with pytest.raises(PairError, match="outside the LR volume"):
        prepare_pair(lr, hr, scale=3, offset=(2, 60, 15))


def test_unrelated_data_is_refused(acquisition, data_dir):
    lr, _ = acquisition
    other = np.stack([imread(f) for f in sorted((data_dir / "validation_sample").glob("*.png"))[:4]])
    with pytest.raises(PairError, match="not found in the LR volume: best match score"):
        prepare_pair(lr, other[:, :150, :150].astype(np.float32), lr_pixel_nm=30, hr_pixel_nm=10)


def test_bad_shapes(acquisition):
    lr, hr_full = acquisition
    with pytest.raises(PairError, match="3D stacks"):
        prepare_pair(lr[0], hr_full[0], scale=3)
    with pytest.raises(PairError, match="larger than the LR field"):
        prepare_pair(lr[:, :30, :30], hr_full[:, :150, :150], scale=3)
    with pytest.raises(PairError, match="give the LR and HR pixel sizes"):
        prepare_pair(lr, hr_full)
