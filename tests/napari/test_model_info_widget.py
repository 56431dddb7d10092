"""The Model info dock widget, driven in a real napari viewer under the virtual display."""

import torch

from napari_emsr import build_emsr, save_model
from napari_emsr.config import PRESETS

from ..conftest import TINY
from ..test_zoo import small_zoo, use_zoo


def _dock(viewer, qtbot):
    dock, widget = viewer.window.add_plugin_dock_widget("napari-emsr", "Model info")
    qtbot.waitUntil(dock.isVisible)
    return widget


def test_opens_on_the_default_model(make_napari_viewer, qtbot):
    """The pretrained model shipped with the package comes first, described as trained."""
    from napari_emsr.zoo import default_for_scale, zoo_models

    widget = _dock(make_napari_viewer(show=True), qtbot)
    default = default_for_scale(3)
    text = widget.text.toPlainText()
    assert default.path.name in text and "status:       trained" in text
    assert f"zoo name:     {default.name}" in text and "default:      yes" in text
    assert "Random weights" not in widget.status.text()
    items = [widget.source.itemText(i) for i in range(widget.source.count())]
    assert items[: len(zoo_models())] == [c.label for c in widget.shipped] and items[-1] == "Model file..."


def test_shows_the_paper_preset(make_napari_viewer, qtbot):
    widget = _dock(make_napari_viewer(show=True), qtbot)
    widget.source.setCurrentText("Preset: paper")
    text = widget.text.toPlainText()
    assert "preset paper, x3" in text and "parameters:" in text
    assert "Random weights" in widget.status.text()
    widget.scale.setCurrentText("x2")
    assert "preset paper, x2" in widget.text.toPlainText()
    widget.source.setCurrentText("Preset: lite")
    assert "preset lite, x2" in widget.text.toPlainText()


def test_model_file_and_bad_file(make_napari_viewer, qtbot, tmp_path):
    widget = _dock(make_napari_viewer(show=True), qtbot)
    torch.manual_seed(0)
    good = save_model(build_emsr(scale=4, **TINY), tmp_path / "m.safetensors", trained=True, input_pixel_size_nm=40)
    widget.show_file(good)
    assert "x4" in widget.text.toPlainText() and "40 nm input -> 10 nm output" in widget.text.toPlainText()
    assert widget.status.text() == "Trained model."
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"PK\x03\x04 not a model")
    widget.show_file(bad)  # must not raise: the error is shown in the widget
    assert "never unpickles" in widget.status.text()
    assert widget.text.toPlainText() == ""


def test_default_model_comes_first_when_shipped(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import napari_emsr.model_io

    torch.manual_seed(0)
    shipped = save_model(build_emsr(scale=3, **TINY), tmp_path / "default.safetensors", trained=True)
    monkeypatch.setattr(napari_emsr.model_io, "default_model_path", lambda scale=None: shipped)
    widget = _dock(make_napari_viewer(show=True), qtbot)
    assert widget.source.currentText() == "Default model (default)"
    assert widget.status.text() == "Trained model." and "x3" in widget.text.toPlainText()


def test_describes_any_zoo_model(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    use_zoo(monkeypatch, small_zoo(tmp_path / "weights"))
    widget = _dock(make_napari_viewer(show=True), qtbot)
    items = [widget.source.itemText(i) for i in range(widget.source.count())]
    presets = [f"Preset: {name}" for name in PRESETS]
    assert items == ["test-x3 (x3, 30 nm, default)", "test-x2 (x2, 20 nm, default)", *presets, "Model file..."]
    text = widget.text.toPlainText()  # the x3 default first
    assert "zoo name:     test-x3" in text and "valid input:  20-45 nm (measured)" in text
    assert "model card:   docs/models/test-x3.md" in text and "preset lite, x3" in text
    assert not widget.scale.isEnabled()
    widget.show_zoo_model("test-x2")
    text = widget.text.toPlainText()
    assert "zoo name:     test-x2" in text and "valid input:  not measured" in text and "x2" in text
    assert "test-x2.safetensors" in text and "20 nm input -> 10 nm output" in text
    assert widget.status.text() == "Trained model."
    widget.source.setCurrentText("Preset: lite")
    assert "zoo name" not in widget.text.toPlainText()
