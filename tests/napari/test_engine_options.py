"""The model / device / tiling form shared by Super-resolve, Export and Fine-tune."""

import pytest
import torch
from qtpy.QtCore import Qt

from napari_emsr import build_emsr, save_model
from napari_emsr._napari.common.engine_options import NO_DEFAULT_MODEL, EngineOptions, OverlapBox
from napari_emsr.predict import PredictOptions

from ..conftest import TINY
from ..test_zoo import small_zoo, use_zoo


def _items(form):
    return [form.source.native.itemText(i) for i in range(form.source.native.count())]


def test_without_a_default_model_it_asks_for_a_file_and_says_why(qtbot, monkeypatch, tmp_path):
    import napari_emsr.model_io

    use_zoo(monkeypatch, tmp_path)  # a build that ships no model: an empty zoo
    monkeypatch.setattr(napari_emsr.model_io, "default_model_path", lambda scale=None: None)
    form = EngineOptions()
    qtbot.addWidget(form)
    assert _items(form) == ["Model file..."] and form.default_path is None and form.zoo_model() is None
    assert form.model_status.value == NO_DEFAULT_MODEL
    with pytest.raises(ValueError, match="no model chosen"):
        form.model()
    cpu = form.device.native.findData("cpu")
    assert form.device.native.model().item(cpu).isEnabled() and form.device_status.value.startswith("Uses ")
    if not torch.cuda.is_available():  # CUDA is listed, greyed out, with the reason as a tooltip
        cuda = form.device.native.findData("cuda")
        assert not form.device.native.model().item(cuda).isEnabled()
        assert form.device.native.itemText(cuda) == "cuda (not available)"
        assert "CUDA" in form.device.native.model().item(cuda).toolTip()
    assert form.options() == PredictOptions(device="auto", tile=None, overlap="auto", self_ensemble=False)
    assert form.options(first_slice=3, overwrite=True) == PredictOptions(first_slice=3, overwrite=True)
    assert form.overlap.native.text() == "auto (measured effective radius)"
    form.overlap.value = OverlapBox.EXACT
    assert form.options().overlap == "exact" and form.overlap.native.text() == "exact (receptive radius)"
    form.tile.value = 256
    form.overlap.value = 0
    assert form.options().tile == 256 and form.options().overlap == 0


def test_a_default_model_outside_the_zoo_is_offered_and_used_first(qtbot, tmp_path, monkeypatch):
    """``default_model_path`` pointed elsewhere (as other tests do): that file is chosen first, the zoo follows."""
    import napari_emsr.model_io
    from napari_emsr.zoo import zoo_models

    torch.manual_seed(0)
    shipped = save_model(build_emsr(scale=3, **TINY), tmp_path / "default.safetensors", trained=True,
                         input_pixel_size_nm=30)  # fmt: skip
    monkeypatch.setattr(napari_emsr.model_io, "default_model_path", lambda scale=None: shipped)
    form = EngineOptions()
    qtbot.addWidget(form)
    assert form.source.current_choice == "Default model (default)" and form.source.native.currentIndex() == 0
    assert _items(form)[1:] == [c.label for c in form.shipped[1:]] + ["Model file..."]
    assert form.zoo_names() == [m.name for m in zoo_models()]
    assert form.model_path() == shipped == form.default_path and form.model().metadata.trained
    assert form.zoo_model() is None  # not a zoo entry
    assert form.model_status.value.startswith("Trained model") and "30 nm input" in form.model_status.value
    assert form.model() is form.model()  # loaded once


def test_every_zoo_model_is_offered_by_name(qtbot, tmp_path, monkeypatch):
    weights = use_zoo(monkeypatch, small_zoo(tmp_path / "weights"))
    form = EngineOptions()
    qtbot.addWidget(form)
    assert _items(form) == ["test-x3 (x3, 30 nm, default)", "test-x2 (x2, 20 nm, default)", "Model file..."]
    assert form.source.current_choice == "test-x3 (x3, 30 nm, default)"  # the x3 default comes first
    assert form.model_path() == weights / "test-x3.safetensors" == form.default_path
    assert form.zoo_model().name == "test-x3" and form.model().config.scale == 3
    status = form.model_status.value
    assert status.startswith("Trained model") and "measured to work for 20-45 nm input" in status
    assert "Model card: docs/models/test-x3.md" in status
    tip = form.source.native.itemData(0, Qt.ItemDataRole.ToolTipRole)  # description, measured range, card
    assert "a lite x3" in tip and "20-45 nm" in tip and "docs/models/test-x3.md" in tip
    assert form.path.native.isHidden()

    form.set_zoo_model("test-x2")
    assert form.model_path() == weights / "test-x2.safetensors" and form.model().config.scale == 2
    assert form.zoo_model().name == "test-x2" and "x2" in form.model_status.value
    form.set_zoo_model("default")
    assert form.zoo_model().name == "test-x3"
    with pytest.raises(KeyError, match="test-x3, test-x2"):
        form.set_zoo_model("nope")

    model_file = save_model(build_emsr(scale=4, **TINY), tmp_path / "m.safetensors", trained=True)
    form.set_model_file(model_file)
    assert form.source.current_choice == "Model file..." and form.zoo_model() is None
    assert not form.path.native.isHidden() and form.path.line_edit.value == str(model_file)
    assert form.model_path() == model_file and form.model().config.scale == 4


def test_fine_tune_form_adds_new_networks(qtbot, tmp_path, monkeypatch):
    use_zoo(monkeypatch, small_zoo(tmp_path / "weights"))
    form = EngineOptions(presets=("lite", "paper"), inference=False)
    qtbot.addWidget(form)
    assert _items(form) == ["test-x3 (x3, 30 nm, default)", "test-x2 (x2, 20 nm, default)", "Model file...",
                            "New lite network (random weights)", "New paper network (random weights)"]  # fmt: skip
    assert form.new_preset() is None and form.zoo_model().name == "test-x3"
    form.source.native.setCurrentText("New paper network (random weights)")
    assert form.new_preset() == "paper" and form.model_path() is None and form.zoo_model() is None
    form.set_zoo_model("test-x2")
    assert form.new_preset() is None and form.model().config.scale == 2


def test_self_ensemble_implied_then_given_back(qtbot):
    """Another choice (the uncertainty map) ticks and locks Self-ensemble; released, the user's choice returns."""
    form = EngineOptions()
    qtbot.addWidget(form)
    for chosen in (False, True):
        form.self_ensemble.value = chosen
        form.imply_self_ensemble("needed by the map")
        form.imply_self_ensemble("needed by the map")  # twice: the user's choice is still the one kept
        assert form.self_ensemble.value and not form.self_ensemble.enabled and form.options().self_ensemble
        assert form.self_ensemble.tooltip == "needed by the map"
        form.imply_self_ensemble(None)
        assert form.self_ensemble.value is chosen and form.self_ensemble.enabled and not form.self_ensemble.tooltip


def test_the_line_under_device_quotes_the_figures_of_what_the_panel_runs(qtbot, monkeypatch):
    """On an AMX CPU, auto is bf16 in both forms; a prediction form quotes prediction's gain, a training form training's."""
    from napari_emsr import device as device_module

    monkeypatch.setattr(device_module, "cpu_has_amx_bf16", lambda: True)
    predict, train = EngineOptions(), EngineOptions(presets=("lite",), inference=False)
    for form in (predict, train):
        qtbot.addWidget(form)
        form.device.value = "cpu"
        assert form.precision.value == "auto" and "cpu, bf16 (auto: this CPU has AMX-BF16" in form.device_status.value
    assert "about 2x fp32, output within 0.001 dB" in predict.device_status.value
    assert "about 1.6x the steps of fp32, same quality" in train.device_status.value
