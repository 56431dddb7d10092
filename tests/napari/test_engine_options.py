"""The model / device / tiling form shared by Super-resolve and Export."""

import torch

from napari_emsr import build_emsr, save_model
from napari_emsr._napari._engine_options import NO_DEFAULT_MODEL, EngineOptions

from ..conftest import TINY


def test_without_a_default_model_it_asks_for_a_file_and_says_why(qtbot, monkeypatch):
    import napari_emsr.model_io

    monkeypatch.setattr(napari_emsr.model_io, "default_model_path", lambda scale=None: None)
    form = EngineOptions()
    qtbot.addWidget(form)
    assert [form.source.itemText(i) for i in range(form.source.count())] == ["Model file..."]
    assert form.model_status.text() == NO_DEFAULT_MODEL
    cpu = form.device.findData("cpu")
    assert form.device.model().item(cpu).isEnabled() and form.device_status.text().startswith("Uses ")
    if not torch.cuda.is_available():  # CUDA is listed, greyed out, with the reason as a tooltip
        cuda = form.device.findData("cuda")
        assert not form.device.model().item(cuda).isEnabled() and form.device.itemText(cuda) == "cuda (not available)"
        assert "CUDA" in form.device.model().item(cuda).toolTip()
    assert form.options() == {"device": "auto", "tile": None, "overlap": "auto", "self_ensemble": False}
    assert form.overlap.text() == "auto (measured effective radius)"
    form.overlap.setValue(form.overlap.EXACT)
    assert form.options()["overlap"] == "exact" and form.overlap.text() == "exact (receptive radius)"
    form.tile.setValue(256)
    form.overlap.setValue(0)
    assert form.options()["tile"] == 256 and form.options()["overlap"] == 0


def test_the_default_model_is_offered_and_used_first(qtbot, tmp_path, monkeypatch):
    import napari_emsr.model_io

    torch.manual_seed(0)
    shipped = save_model(build_emsr(scale=3, **TINY), tmp_path / "default.safetensors", trained=True,
                         input_pixel_size_nm=30)  # fmt: skip
    monkeypatch.setattr(napari_emsr.model_io, "default_model_path", lambda scale=None: shipped)
    form = EngineOptions()
    qtbot.addWidget(form)
    assert form.source.currentText() == "Default model (default)"
    assert form.model_path() == shipped and form.model().metadata.trained
    assert form.model_status.text().startswith("Trained model") and "30 nm input" in form.model_status.text()
    assert form.model() is form.model()  # loaded once
