"""The Super-resolve dock widget on the sample, in a real viewer under the virtual display."""

import numpy as np
import pytest

from napari_emsr._napari.common.layers import region_in_view

from ..test_zoo import small_zoo, use_zoo
from .conftest import dock, run_and_wait


def _widget(viewer, qtbot, model_file, layer="EM LR 30 nm"):
    widget = dock(viewer, qtbot, "Super-resolve")
    widget.engine.set_model_file(model_file)
    widget.engine.device.value = "cpu"
    if layer is not None:
        widget.layer_combo.set_layer(layer)
    return widget


def _world(layer, index):
    return np.asarray(layer.data_to_world(np.asarray(index, dtype=float)))


def test_current_slice_then_whole_stack(sample, qtbot, model_file, notes):
    viewer = sample
    widget = _widget(viewer, qtbot, model_file)
    assert "RANDOM WEIGHTS" in widget.engine.model_status.value
    lr, hr = viewer.layers["EM LR 30 nm"], viewer.layers["EM HR 10 nm"]
    viewer.dims.set_point(0, 70.0)  # world z in nm: slice 7
    widget.scope.setCurrentText("Current slice")
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    assert any("random weights" in message for message in notes("warning"))  # said loudly, every run
    one = widget.result_layer
    assert one.name == "EM LR 30 nm SR x3 (slice 7) [random weights]"
    assert one.data.shape == (1, 519, 519) and one.data.dtype == np.uint8 and one.data.any()
    np.testing.assert_allclose(one.scale, (10, 10, 10))
    np.testing.assert_allclose(one.translate, (70, -10, -10))  # in_translate - p/2 + p/(2s) = 0 - 15 + 5
    # SR pixel centres fall on the HR pixels of the same place (HR starts at original pixel 138)
    np.testing.assert_allclose(_world(one, (0, 138 + 5, 138 + 9)), _world(hr, (7, 5, 9)))
    # ... and an LR pixel centre on the centre of its 3 x 3 SR pixels
    np.testing.assert_allclose(_world(one, (0, 3 * 20 + 1, 3 * 30 + 1)), _world(lr, (7, 20, 30)))

    widget.scope.setCurrentText("Whole stack (current slice first)")
    seen = []
    widget.run_panel.progressed.connect(lambda e: seen.append(e.payload.index) if e.kind == "slice" else None)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    stack = widget.result_layer
    assert stack.data.shape == (16, 519, 519) and stack.name == "EM LR 30 nm SR x3 [random weights]"
    np.testing.assert_allclose(stack.scale, (10, 10, 10))
    np.testing.assert_allclose(stack.translate, (0, -10, -10))
    assert seen[0] == 7 and sorted(seen) == list(range(16))  # the slice on screen came first
    np.testing.assert_array_equal(stack.data[7], one.data[0])  # the preview slice equals the stack's
    assert stack.metadata["napari_emsr"]["source_layer"] == "EM LR 30 nm"
    assert not stack.metadata["napari_emsr"]["trained"]


def test_a_zoo_model_chosen_by_name(make_napari_viewer, qtbot, tmp_path, monkeypatch, notes):
    """The panel offers every zoo model; the one chosen is the one run (its scale shows in the result)."""
    weights = use_zoo(monkeypatch, small_zoo(tmp_path / "weights"))  # test-x3 (the default), test-x2
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-emsr", "em_pair")
    widget = dock(viewer, qtbot, "Super-resolve")
    combo = widget.engine.source.native
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "test-x3 (x3, 30 nm, default)", "test-x2 (x2, 20 nm, default)", "Model file..."]  # fmt: skip
    assert combo.currentText() == "test-x3 (x3, 30 nm, default)"
    combo.setCurrentText("test-x2 (x2, 20 nm, default)")  # as a user picks it
    assert "Trained model" in widget.engine.model_status.value and "x2" in widget.engine.model_status.value
    widget.engine.device.value = "cpu"
    widget.layer_combo.set_layer("EM LR 30 nm")
    viewer.dims.set_point(0, 50.0)  # slice 5
    widget.scope.setCurrentText("Current slice")
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    result = widget.result_layer
    assert result.name == "EM LR 30 nm SR x2 (slice 5)"  # trained: no "[random weights]"
    assert result.data.shape == (1, 346, 346)  # 173 x 2
    np.testing.assert_allclose(result.scale, (10, 15, 15))
    np.testing.assert_allclose(result.translate, (50, -7.5, -7.5))  # 0 - 15 + 15 / 2
    meta = result.metadata["napari_emsr"]
    assert meta["zoo_model"] == "test-x2" and meta["model_file"] == str(weights / "test-x2.safetensors")
    assert meta["scale"] == 2 and meta["trained"]
    # trained on 20 nm, no measured range: the 30 nm input is +50 % away, said as a warning
    assert any("differs from the model's training pixel size (20 nm) by +50 %" in m for m in notes("warning"))


def test_region_in_view(sample, qtbot, model_file):
    viewer = sample
    widget = _widget(viewer, qtbot, model_file)
    viewer.dims.set_point(0, 30.0)
    viewer.scene.camera.center = (30.0, 2400.0, 1800.0)
    viewer.scene.camera.zoom = 8.0  # screen pixels per nm: a few hundred nm in view
    rows, cols = region_in_view(viewer, viewer.layers["EM LR 30 nm"])
    height, width = viewer.canvas.viewbox_size(viewer.layers)
    assert 0 < rows.stop - rows.start <= height / 8 / 30 + 2 and 0 < cols.stop - cols.start <= width / 8 / 30 + 2
    assert rows.start <= 80 < rows.stop and cols.start <= 60 < cols.stop  # the centre (2400, 1800 nm) is in view
    widget.scope.setCurrentText("Current slice, region in view")
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    result = widget.result_layer
    assert result.data.shape == (1, 3 * (rows.stop - rows.start), 3 * (cols.stop - cols.start))
    np.testing.assert_allclose(result.translate, (30, 30 * rows.start - 10, 30 * cols.start - 10))
    assert "region" in result.name


def test_cancel_midway_leaves_no_layer(sample, qtbot, model_file):
    viewer = sample
    widget = _widget(viewer, qtbot, model_file)
    widget.scope.setCurrentText("Whole stack (current slice first)")
    widget.engine.tile.value = 32
    widget.engine.overlap.value = 8  # 36 tiles per slice: a long run
    before = [layer.name for layer in viewer.layers]
    events = []

    def on_event(event):
        events.append(event)
        if event.kind == "slice":
            widget.cancel()  # after the first slice (a live result layer exists by now)

    widget.run_panel.progressed.connect(on_event)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "cancelled"
    assert [layer.name for layer in viewer.layers] == before  # the half-made result layer is gone
    assert [e.payload for e in events if e.kind == "slice"][-1].slices_done < 16
    assert all(e.kind != "done" for e in events) and events[0].job == "predict"
    assert widget.result_layer is None and "Cancelled" in widget.run_panel.status.text()
    assert widget.run_panel.run_button.isEnabled() and not widget.run_panel.running


def test_errors_become_notifications(make_napari_viewer, qtbot, model_file, tmp_path, notes):
    viewer = make_napari_viewer(show=True)
    widget = _widget(viewer, qtbot, model_file, layer=None)
    widget.run()  # no layer at all
    assert "no image layer" in notes()[-1]

    viewer.add_image(np.zeros((8, 8, 3), np.uint8), name="colour", rgb=True)
    widget.layer_combo.set_layer("colour")
    widget.run()
    assert "RGB" in notes()[-1]

    viewer.add_image(np.zeros((2, 3, 8, 8), np.uint8), name="4d")
    widget.layer_combo.set_layer("4d")
    widget.run()
    assert "4 dimensions" in notes()[-1]

    viewer.add_image(np.zeros((16, 16), np.float32), name="flat")
    widget.layer_combo.set_layer("flat")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a model at all")
    widget.engine.set_model_file(bad)
    assert "Cannot use this model" in widget.engine.model_status.value
    widget.run()
    assert "bad.safetensors" in notes()[-1] and not widget.run_panel.running
    assert len(viewer.layers) == 3 and widget.result_layer is None


def test_engine_error_in_worker_is_a_notification(make_napari_viewer, qtbot, model_file, notes):
    viewer = make_napari_viewer(show=True)
    data = np.full((24, 24), 0.5, np.float32)
    data[3, 4] = np.nan  # the engine refuses NaN: the error is raised in the worker thread
    viewer.add_image(data, name="nan")
    widget = _widget(viewer, qtbot, model_file, layer="nan")
    assert widget.scope.currentText() == "Whole image"
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "failed"
    assert any("NaN" in message for message in notes())
    assert [layer.name for layer in viewer.layers] == ["nan"]
    assert "Failed" in widget.run_panel.status.text() and widget.run_panel.run_button.isEnabled()


def test_out_of_memory_message_says_what_to_do(monkeypatch):
    """A result too large for memory: the library's hints, phrased in the panels' terms (not as CLI flags)."""
    import napari_emsr.predict.api as api
    from napari_emsr._napari.common.run_panel import gui_message
    from napari_emsr.cli._progress import cli_message
    from napari_emsr.errors import HintedMemoryError

    def no_room(shape, dtype):
        raise MemoryError("Unable to allocate 40.0 GiB")

    monkeypatch.setattr(api.np, "zeros", no_room)
    with pytest.raises(HintedMemoryError) as caught:
        api.ArrayWriter((4000, 4000, 2000), np.dtype(np.uint8))
    said = gui_message(caught.value)
    assert "does not fit in memory" in said and 'use the Export panel ("Super-resolve to disk")' in said
    assert 'choose a Scope with "region in view"' in said and "--" not in said and "output=" not in said
    assert "give --output PATH" in cli_message(caught.value) and "pass output=PATH" in str(caught.value)


def test_image_is_the_lr_then_follows_the_layer_list(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = dock(viewer, qtbot, "Super-resolve")  # the default model (x3 for 30 nm input)
    viewer.open_sample("napari-emsr", "em_pair")
    lr, hr = viewer.layers["EM LR 30 nm"], viewer.layers["EM HR 10 nm"]
    assert viewer.layers.selection.active is hr
    assert widget.layer_combo.layer() is lr  # the layer whose pixel size suits the model, not the last added
    later = dock(viewer, qtbot, "Export")
    assert dock(viewer, qtbot, "Side by side").lr.layer() is lr and later.layer_combo.layer() is hr
    qtbot.wait(10)
    viewer.layers.selection.active = lr
    viewer.layers.selection.active = hr  # the user's selection in the layer list is followed...
    assert widget.layer_combo.layer() is hr
    combo = widget.layer_combo.native
    combo.setCurrentIndex(widget.layer_combo.names().index(lr.name))
    combo.activated.emit(combo.currentIndex())  # ...until the user picks in the panel
    viewer.layers.selection.active = lr
    viewer.layers.selection.active = hr
    assert widget.layer_combo.layer() is lr


def test_uncertainty_map_beside_the_result(sample, qtbot, model_file):
    """With the box ticked: the self-ensemble result and the library's map, as two layers placed alike."""
    from napari_emsr import super_resolve
    from napari_emsr._napari.common.engine_options import engine_pixel_size
    from napari_emsr._napari.common.layers import layer_pixel_size
    from napari_emsr.predict.uncertainty import ensemble_spread

    viewer = sample
    widget = _widget(viewer, qtbot, model_file)
    lr = viewer.layers["EM LR 30 nm"]
    assert not widget.uncertainty.isChecked() and not widget.engine.self_ensemble.value  # off by default
    tip = widget.uncertainty.toolTip()
    assert "Not an error bar" in tip and "misses errors all 8 predictions share" in tip
    widget.uncertainty.setChecked(True)  # self-ensemble is implied: ticked, and locked while the map is on
    assert widget.engine.self_ensemble.value and not widget.engine.self_ensemble.enabled
    viewer.dims.set_point(0, 70.0)  # slice 7
    widget.scope.setCurrentText("Current slice")
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    result, spread = widget.result_layer, widget.uncertainty_layer
    assert spread.name == "EM LR 30 nm SR x3 uncertainty (slice 7) [random weights]"
    assert [layer.name for layer in viewer.layers][-2:] == [result.name, spread.name]
    assert spread.data.dtype == np.float32 and spread.data.shape == result.data.shape == (1, 519, 519)
    options = {"device": "cpu", "pixel_size": engine_pixel_size(layer_pixel_size(lr))}
    with pytest.warns(UserWarning, match="random weights"):
        mean, expected = ensemble_spread(lr.data[7:8], widget.engine.model(), **options)
        ensembled = super_resolve(lr.data[7:8], widget.engine.model(), self_ensemble=True, **options)
    np.testing.assert_array_equal(spread.data, expected)  # the library's map, as it computes it
    np.testing.assert_array_equal(result.data, mean)
    np.testing.assert_array_equal(result.data, ensembled)  # the result is the self-ensemble's
    assert spread.data.max() > 0  # random weights are not flip-equivariant: the 8 answers differ
    for key in ("scale", "translate", "rotate", "shear"):
        np.testing.assert_allclose(np.asarray(getattr(spread, key)), np.asarray(getattr(result, key)))
    np.testing.assert_allclose(spread.affine.affine_matrix, result.affine.affine_matrix)
    assert spread.colormap.name == "magma"
    assert spread.contrast_limits == pytest.approx([0.0, float(np.percentile(expected[0], 99.5))])
    meta = spread.metadata["napari_emsr"]
    assert meta["kind"] == "uncertainty" and meta["source_layer"] == lr.name and meta["plan"]["self_ensemble"]
    assert "kind" not in result.metadata["napari_emsr"]
    assert spread.name not in widget.layer_combo.names() and result.name in widget.layer_combo.names()
    status = widget.run_panel.status.text()
    assert f"Uncertainty map '{spread.name}'" in status and "not an error bar" in status

    widget.uncertainty.setChecked(False)  # self-ensemble back as it was; a run without the map makes none
    assert not widget.engine.self_ensemble.value and widget.engine.self_ensemble.enabled
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    assert widget.uncertainty_layer is None and "uncertainty" not in viewer.layers[-1].name
    assert "Uncertainty" not in widget.run_panel.status.text()


def test_cancel_removes_the_result_and_its_uncertainty_map(sample, qtbot, model_file):
    viewer = sample
    widget = _widget(viewer, qtbot, model_file)
    widget.uncertainty.setChecked(True)
    widget.scope.setCurrentText("Whole stack (current slice first)")
    widget.engine.tile.value = 64
    before = [layer.name for layer in viewer.layers]
    made = []

    def on_event(event):
        if event.kind == "slice":
            made.append([layer.name for layer in viewer.layers])
            widget.cancel()  # after the first slice: both layers exist by now

    widget.run_panel.progressed.connect(on_event)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "cancelled"
    assert made[0][-2:] == ["EM LR 30 nm SR x3 [random weights]", "EM LR 30 nm SR x3 uncertainty [random weights]"]
    assert [layer.name for layer in viewer.layers] == before  # both half-made layers are gone
    assert widget.result_layer is None and widget.uncertainty_layer is None
