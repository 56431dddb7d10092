"""The Export dock widget: write a layer, run a whole LR volume to disk, cancel, refuse to clobber."""

import numpy as np
import pytest

from napari_emsr.io import open_volume

from .conftest import dock, run_and_wait


def _widget(viewer, qtbot, mode, fmt, path, model_file=None):
    widget = dock(viewer, qtbot, "Export")
    widget.layer_combo.set_layer("EM LR 30 nm")
    widget.mode.setCurrentText(mode)
    widget.format.setCurrentText(fmt)
    widget.path.setText(str(path))
    if model_file is not None:
        widget.engine.set_model_file(model_file)
        widget.engine.device.value = "cpu"
    return widget


def test_write_a_layer_and_read_it_back(sample, qtbot, tmp_path):
    widget = _widget(sample, qtbot, "Write the layer", "OME-TIFF", tmp_path / "lr")
    assert not widget.engine.isVisible()  # no model needed to write a layer
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    assert widget.path.text().endswith("lr.ome.tif")
    with open_volume(tmp_path / "lr.ome.tif") as volume:
        assert volume.pixel_size_nm == (10, 30, 30)
        np.testing.assert_array_equal(np.asarray(volume.data), sample.layers["EM LR 30 nm"].data)


def test_super_resolve_to_disk_and_read_back(sample, qtbot, tmp_path, model_file):
    widget = _widget(sample, qtbot, "Super-resolve to disk", "OME-Zarr", tmp_path / "sr", model_file)
    assert widget.engine.isVisible()
    layers_before = len(sample.layers)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    assert len(sample.layers) == layers_before  # written to disk, not into the viewer
    assert "Wrote" in widget.run_panel.status.text()
    with open_volume(tmp_path / "sr.ome.zarr") as volume:
        assert volume.shape == (16, 519, 519)
        assert volume.pixel_size_nm == (10, 10, 10)  # LR 30 nm / 3 in y and x
    [layer] = sample.open(tmp_path / "sr.ome.zarr", plugin="napari-emsr")
    np.testing.assert_allclose(layer.translate, (0, -10, -10))  # reopens over the LR layer


@pytest.mark.parametrize("fmt, name", [("OME-TIFF", "sr.ome.tif"), ("OME-Zarr", "sr.ome.zarr")])
def test_cancel_midway_leaves_no_file(sample, qtbot, tmp_path, model_file, fmt, name):
    widget = _widget(sample, qtbot, "Super-resolve to disk", fmt, tmp_path / name, model_file)
    widget.engine.tile.value = 32
    widget.engine.overlap.value = 8
    slices = []

    def on_event(event):
        if event.kind == "slice":
            slices.append(event.payload.index)
            widget.cancel()  # one slice is already on disk, under a temporary name

    widget.run_panel.progressed.connect(on_event)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "cancelled"
    assert 1 <= len(slices) < 16
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file, no partial folder


def test_existing_output_is_not_replaced_unless_asked(sample, qtbot, tmp_path, notes):
    target = tmp_path / "taken.ome.tif"
    target.write_bytes(b"precious")
    widget = _widget(sample, qtbot, "Write the layer", "OME-TIFF", target)
    widget.run()
    assert "exists" in notes()[-1] and target.read_bytes() == b"precious" and not widget.run_panel.running
    widget.replace.setChecked(True)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    with open_volume(target) as volume:
        assert volume.shape == (16, 173, 173)
