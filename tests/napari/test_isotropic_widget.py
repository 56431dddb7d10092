"""The Isotropic dock widget in a real viewer under the virtual display.

Tiny scale-1 networks (random weights, marked trained) check the mechanics: the z factor from the
layer's scale, the result's shape and placement, equality with the library run directly, errors.
"""

import numpy as np
import pytest

from napari_emsr.config import EMSRConfig
from napari_emsr.isotropic import isotropic
from napari_emsr.isotropic.sampling import isotropic_depth
from napari_emsr.model.emsr import build_emsr
from napari_emsr.model_io import save_model

from ..conftest import TINY
from .conftest import dock, run_and_wait

ENGINE = dict(device="cpu", precision="fp32", tile=32)


def _model_file(path, scale=1, seed=0):
    import torch

    torch.manual_seed(seed)
    model = build_emsr(EMSRConfig(scale=scale, global_residual=int(scale == 1), **TINY))
    # random weights: marked trained (and for K 2.5) so that the runs are quiet; the tests check mechanics only
    model.metadata = model.metadata.updated(trained=True, provenance={"section_sampling": {"factor": 2.5}})
    return save_model(model, path)


@pytest.fixture(scope="module")
def iso_model(tmp_path_factory):
    return _model_file(tmp_path_factory.mktemp("iso") / "iso_x1.safetensors")


@pytest.fixture
def volume():
    return np.random.default_rng(5).integers(0, 256, (6, 48, 48), dtype=np.uint8)


def _panel(viewer, qtbot, model=None):
    widget = dock(viewer, qtbot, "Isotropic")
    widget.engine.device.value = ENGINE["device"]
    widget.engine.precision.value = ENGINE["precision"]
    widget.engine.tile.value = ENGINE["tile"]
    if model is not None:
        widget.source.value = "Model file..."
        widget.model_file.value = model
    return widget


def test_the_z_factor_follows_the_layers_scale(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((4, 16, 16), np.uint8), name="sections", scale=(30, 10, 10))
    viewer.add_image(np.zeros((4, 16, 16), np.uint8), name="finer", scale=(25, 10, 10), translate=(5, 0, 0))
    viewer.add_image(np.zeros((16, 16), np.uint8), name="flat", scale=(10, 10))
    widget = _panel(viewer, qtbot)
    assert widget.layer_combo.names() == ["sections", "finer"]  # a 2-D layer is not offered
    widget.layer_combo.set_layer("sections")
    assert widget.z_factor.value == pytest.approx(3.0) and widget.factor() == pytest.approx(3.0)
    assert "30 / 10 nm" in widget.z_note.value
    widget.layer_combo.set_layer("finer")
    assert widget.z_factor.value == pytest.approx(2.5)
    widget.z_factor.value = 2.8  # the user's value wins until another layer (or scale) comes
    assert widget.factor() == pytest.approx(2.8)
    viewer.layers["finer"].name = "renamed"
    assert widget.layer_combo.names() == ["sections", "renamed"] and widget.z_factor.value == pytest.approx(2.8)
    viewer.layers["renamed"].name = "finer"
    viewer.layers["finer"].scale = (40, 10, 10)
    assert widget.z_factor.value == pytest.approx(4.0)
    widget.layer_combo.set_layer("sections")
    assert widget.z_factor.value == pytest.approx(3.0)

    viewer.add_image(np.zeros((4, 16, 16), np.uint8), name="ratio", scale=(50, 15, 15))
    widget.layer_combo.set_layer("ratio")
    assert widget.z_factor.value == pytest.approx(3.33)  # two decimals shown...
    assert widget.factor() == pytest.approx(50 / 15)  # ... the exact ratio used
    viewer.add_image(np.zeros((4, 16, 16), np.uint8), name="unknown")  # scale 1: not known
    widget.layer_combo.set_layer("unknown")
    assert "type K" in widget.z_note.value and widget.z_factor.value == pytest.approx(3.33)  # kept


def test_a_run_with_a_model_file_equals_the_library_and_overlays_the_input(
    make_napari_viewer, qtbot, iso_model, volume
):
    viewer = make_napari_viewer(show=True)
    layer = viewer.add_image(volume, name="aniso", scale=(25, 10, 10), translate=(100, 20, 30))
    widget = _panel(viewer, qtbot, iso_model)
    widget.layer_combo.set_layer("aniso")
    assert widget.factor() == pytest.approx(2.5)
    assert "Trained for a z factor of 2.5" in widget.model_status.value
    slices = []
    widget.run_panel.progressed.connect(lambda e: slices.append(e.payload.index) if e.kind == "slice" else None)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    result = widget.result_layer
    depth = isotropic_depth(6, 2.5)
    assert result.name == "aniso isotropic" and [x.name for x in viewer.layers] == ["aniso", "aniso isotropic"]
    assert result.data.shape == (depth, 48, 48) == (13, 48, 48)
    assert result.data.dtype == np.uint8 and sorted(slices) == list(range(depth))
    np.testing.assert_allclose(result.scale, (10, 10, 10))
    np.testing.assert_allclose(result.translate, (100, 20, 30))
    # output row j lies at input slice j / K: rows 0, 5, 10 on slices 0, 2, 4
    for row, z in ((0, 0), (5, 2), (10, 4)):
        np.testing.assert_allclose(result.data_to_world((row, 7, 9)), layer.data_to_world((z, 7, 9)))
    expected = isotropic(volume, iso_model, z_factor=2.5, pixel_size=(25.0, 10.0, 10.0), **ENGINE)
    np.testing.assert_array_equal(np.asarray(result.data), expected)
    assert not np.array_equal(expected[0], np.zeros_like(expected[0]))
    meta = result.metadata["napari_emsr"]
    assert meta["source_layer"] == "aniso" and meta["z_factor"] == 2.5 and meta["model_file"] == str(iso_model)
    assert "Done" in widget.run_panel.status.text() and "z pixel 10 nm" in widget.run_panel.status.text()

    widget.views.value = "xz"  # one view: another result, the same placement
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    xz = isotropic(volume, iso_model, z_factor=2.5, views="xz", **ENGINE)
    np.testing.assert_array_equal(np.asarray(widget.result_layer.data), xz)


def test_a_super_resolution_model_is_refused_in_the_panel(
    make_napari_viewer, qtbot, iso_model, volume, tmp_path, notes
):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(volume, name="aniso", scale=(25, 10, 10))
    x3 = _model_file(tmp_path / "x3.safetensors", scale=3)
    widget = _panel(viewer, qtbot, x3)
    assert "x3 super-resolution model" in widget.model_status.value  # said before running
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "failed"
    status = widget.run_panel.status.text()
    assert "Failed" in status and "scale-1 network" in status and "Train on this volume first" in status
    assert any("scale-1 network" in message for message in notes())
    assert [layer.name for layer in viewer.layers] == ["aniso"] and widget.result_layer is None
    assert widget.run_panel.run_button.isEnabled() and not widget.run_panel.running

    widget.model_file.value = tmp_path / "missing.safetensors"  # refused before starting
    widget.run()
    assert "Not started" in widget.run_panel.status.text() and not widget.run_panel.running

    widget.model_file.value = iso_model  # the viewer and the panel still work
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    assert widget.result_layer.data.shape == (13, 48, 48)


def test_no_stack_is_a_readable_message(make_napari_viewer, qtbot, iso_model, notes):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((16, 16), np.uint8), name="flat")
    widget = _panel(viewer, qtbot, iso_model)
    assert widget.layer_combo.layer() is None
    widget.run()
    assert "no 3-D image layer" in notes()[-1] and not widget.run_panel.running


def test_cancel_midway_leaves_no_layer(make_napari_viewer, qtbot, iso_model, volume):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(volume, name="aniso", scale=(25, 10, 10))
    widget = _panel(viewer, qtbot, iso_model)
    seen = []

    def on_event(event):
        seen.append(event.kind)
        if event.kind == "tiles":
            widget.cancel()

    widget.run_panel.progressed.connect(on_event)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "cancelled"
    assert "done" not in seen and [layer.name for layer in viewer.layers] == ["aniso"]
    assert widget.result_layer is None and "Cancelled" in widget.run_panel.status.text()


@pytest.mark.slow
def test_train_first_then_reconstruct(make_napari_viewer, qtbot, volume, tmp_path, monkeypatch):
    import napari_emsr._napari.isotropic as panel
    from napari_emsr.model_io import load_model

    monkeypatch.setattr(panel, "TRAINING_SETTINGS", dict(steps=2, batch=1, patch=24, val_every=2, val_crop=32))
    viewer = make_napari_viewer(show=True)
    viewer.add_image(volume, name="aniso", scale=(25, 10, 10))
    widget = _panel(viewer, qtbot)
    assert widget.source.value == "Train on this volume first" and widget.minutes.value == 15
    widget.engine.tile.value, widget.views.value = 0, "xz"  # one tile per plane, one view: quicker
    out = tmp_path / "mine"
    widget.save_as.value = out
    jobs = []
    widget.run_panel.progressed.connect(lambda e: jobs.append((e.job, e.kind)))
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    model_path = tmp_path / "mine.safetensors"
    assert ("train", "trained") in jobs and jobs[-1] == ("isotropic", "done")
    assert jobs.index(("train", "trained")) < jobs.index(("isotropic", "start"))
    model = load_model(model_path)
    assert model.config.scale == 1 and model.metadata.provenance["section_sampling"]["factor"] == 2.5
    assert str(model_path) in widget.run_panel.status.text() and widget.model_path() == model_path
    assert widget.result_layer.data.shape == (13, 48, 48)
    widget.run()  # the model file exists: not replaced silently
    assert "Replace an existing model file" in widget.run_panel.status.text() and not widget.run_panel.running
