"""The model zoo: the shipped index, names standing for files, and the measured pixel-size range.

A temporary weights folder (:func:`make_zoo`) holds small models with their own ``zoo.json``;
:func:`use_zoo` points the package at it, so these tests never depend on which models ship.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_emsr.zoo
from napari_emsr import build_emsr, load_model, save_model, super_resolve, zoo
from napari_emsr.model_io import default_model_path, resolve_model_path
from napari_emsr.predict import PixelSizeWarning
from napari_emsr.predict.plan import make_plan

from .conftest import TINY


def make_zoo(weights_dir: Path, models: dict, defaults: dict | None = None, cards: dict | None = None) -> Path:
    """A weights folder: ``models`` maps a zoo name to ``(network, save_model metadata)``.

    ``defaults`` maps a scale to a name; ``cards`` a name to its card. Files are ``<name>.safetensors``.
    """
    weights_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (network, metadata) in models.items():
        save_model(network, weights_dir / f"{name}.safetensors", overwrite=True, **metadata)
        entries.append({"name": name, "file": f"{name}.safetensors", "card": (cards or {}).get(name)})
    index = {"models": entries, "defaults": {str(k): v for k, v in (defaults or {}).items()}}
    (weights_dir / "zoo.json").write_text(json.dumps(index), encoding="utf-8")
    return weights_dir


def use_zoo(monkeypatch, weights_dir: Path) -> Path:
    """Point napari_emsr.zoo (and so resolve_model_path, default_model_path, the panels) at ``weights_dir``."""
    monkeypatch.setattr(napari_emsr.zoo, "WEIGHTS_DIR", weights_dir)
    napari_emsr.zoo._zoo.cache_clear()
    return weights_dir


def small_zoo(weights_dir: Path) -> Path:
    """Two models: ``test-x3`` (lite, 30 nm, measured 20-45 nm, the x3 default) and ``test-x2`` (tiny, 20 nm)."""
    torch.manual_seed(0)
    return make_zoo(
        weights_dir,
        {
            "test-x3": (build_emsr("lite"), dict(trained=True, input_pixel_size_nm=30,
                                                  valid_input_pixel_size_nm=(20, 45), description="a lite x3")),
            "test-x2": (build_emsr(scale=2, **TINY), dict(trained=True, input_pixel_size_nm=20)),
        },
        defaults={3: "test-x3", 2: "test-x2"},
        cards={"test-x3": "docs/models/test-x3.md"},
    )  # fmt: skip


@pytest.fixture
def temp_zoo(tmp_path, monkeypatch):
    yield use_zoo(monkeypatch, small_zoo(tmp_path / "weights"))
    napari_emsr.zoo._zoo.cache_clear()


def test_the_shipped_index_matches_its_files():
    index = json.loads((zoo.WEIGHTS_DIR / "zoo.json").read_text(encoding="utf-8"))
    models = zoo.zoo_models()
    shipped = [e["name"] for e in index["models"] if (zoo.WEIGHTS_DIR / e["file"]).is_file()]
    assert [m.name for m in models] == shipped and len(set(shipped)) == len(shipped)
    for model in models:
        header = load_model(model.path)
        assert model.scale == header.config.scale and model.input_pixel_size_nm == header.metadata.input_pixel_size_nm
        assert model.valid_input_pixel_size_nm == header.metadata.valid_input_pixel_size_nm
        assert header.metadata.trained and zoo.find(model.name) == model
    for scale, name in index["defaults"].items():
        assert zoo.default_for_scale(int(scale)).name == name and zoo.find(name).scale == int(scale)
    assert ("default" in zoo.zoo_names()) == (zoo.default_for_scale(3) is not None)
    if zoo.default_for_scale(3) is not None:
        assert resolve_model_path(None) == resolve_model_path("default") == default_model_path() == zoo.find("default").path


def test_a_temporary_zoo(temp_zoo):
    models = zoo.zoo_models()
    assert [m.name for m in models] == ["test-x3", "test-x2"] == zoo.zoo_names()[1:]
    assert zoo.zoo_names()[0] == "default"
    x3, x2 = models
    assert (x3.scale, x3.preset, x3.input_pixel_size_nm, x3.valid_input_pixel_size_nm) == (3, "lite", 30.0, (20.0, 45.0))
    assert x3.is_default and x3.card == "docs/models/test-x3.md" and x3.description == "a lite x3"
    assert (x2.scale, x2.input_pixel_size_nm, x2.valid_input_pixel_size_nm, x2.card) == (2, 20.0, None, None)
    summary = json.loads(json.dumps(x3.summary()))  # JSON-ready
    assert summary["valid_input_pixel_size_nm"] == [20, 45] and summary["default_for_scale"] is True
    assert summary["file"] == "test-x3.safetensors" and summary["name"] == "test-x3"
    assert zoo.find("test-x2") == x2 and zoo.find("default") == x3 and zoo.find("nope") is None
    assert zoo.default_for_scale() == x3 and zoo.default_for_scale(2) == x2 and zoo.default_for_scale(4) is None
    # the same folder given explicitly
    assert zoo.zoo_models(temp_zoo) == models


def test_zoo_names_stand_for_files(temp_zoo, tmp_path, monkeypatch, em_slice):
    assert resolve_model_path("test-x2") == temp_zoo / "test-x2.safetensors"
    assert resolve_model_path("default") == resolve_model_path(None) == temp_zoo / "test-x3.safetensors"
    assert resolve_model_path(None, scale=2) == default_model_path(2) == temp_zoo / "test-x2.safetensors"
    with pytest.raises(FileNotFoundError, match=r"no shipped model for x4 \(it has x2, x3\)"):
        resolve_model_path(None, scale=4)
    # the engine takes a zoo name as its model: the x2 model is used
    out = super_resolve(em_slice[:24, :24], "test-x2", pixel_size=20, device="cpu", overlap=0)
    assert out.shape == (48, 48)
    monkeypatch.chdir(tmp_path)
    Path("test-x2").write_bytes(b"a file of that name")  # an existing file wins over a zoo name
    assert resolve_model_path("test-x2") == Path("test-x2")
    assert resolve_model_path("other.safetensors") == Path("other.safetensors")  # not a zoo name: a path


def test_an_empty_zoo(tmp_path, monkeypatch):
    use_zoo(monkeypatch, tmp_path)  # no zoo.json
    assert zoo.zoo_models() == [] and zoo.zoo_names() == [] and zoo.find("default") is None
    assert default_model_path() is None
    with pytest.raises(FileNotFoundError, match="no shipped default model"):
        resolve_model_path(None)
    napari_emsr.zoo._zoo.cache_clear()


def _warnings(model, pixel_size):
    """The PixelSizeWarning messages of planning a run on a small image at ``pixel_size``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_plan(np.zeros((24, 24), np.uint8), model, device="cpu", overlap=0, pixel_size=pixel_size).close()
    return [str(w.message) for w in caught if issubclass(w.category, PixelSizeWarning)]


def test_the_pixel_size_warning_uses_the_measured_range(temp_zoo):
    model = load_model(zoo.find("test-x3").path)  # trained on 30 nm, measured valid for 20-45 nm
    for inside in (20, 30, 40, 45):  # 40 nm is +33 %: the 25 % rule would warn, the measured range does not
        assert _warnings(model, inside) == [], inside
    for outside in (15, 19.5, 46, 60):
        (message,) = _warnings(model, outside)
        assert f"({outside:g} nm) is outside the range the model was measured to work for (20-45 nm input" in message
        assert "trained on 30 nm" in message and "emsr info --zoo" in message and "resample" in message
    (message,) = _warnings(model, None)
    assert "unknown" in message and "measured valid for 20-45 nm" in message


def test_without_a_measured_range_the_25_percent_rule(temp_zoo):
    model = load_model(zoo.find("test-x2").path)  # trained on 20 nm, no measured range
    assert model.metadata.valid_input_pixel_size_nm is None
    assert _warnings(model, 20) == [] and _warnings(model, 24) == [] and _warnings(model, 16) == []
    (message,) = _warnings(model, 26)
    assert "(26 nm) differs from the model's training pixel size (20 nm) by +30 %" in message
    (message,) = _warnings(model, 14)
    assert "by -30 %" in message and "Fine-tune" in message


def test_a_range_without_a_training_pixel_size(temp_zoo):
    model = load_model(zoo.find("test-x2").path)
    model.metadata = model.metadata.updated(input_pixel_size_nm=None, valid_input_pixel_size_nm=(10, 30))
    assert _warnings(model, 25) == []
    (message,) = _warnings(model, 40)
    assert "outside the range the model was measured to work for (10-30 nm input)" in message
    (message,) = _warnings(model, None)
    assert "unknown; the model was measured to work for 10-30 nm input pixels" in message
    model.metadata = model.metadata.updated(valid_input_pixel_size_nm=None)
    assert _warnings(model, 40) == [] and _warnings(model, None) == []  # nothing known: nothing to check
