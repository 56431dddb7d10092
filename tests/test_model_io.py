import json
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_emsr import ModelFileError, ModelMetadata, build_emsr, load_model, save_model
from napari_emsr.model_io import FORMAT_NAME

from .conftest import TINY


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_emsr(scale=3, **TINY).eval()


@pytest.fixture
def model_file(model, tmp_path):
    return save_model(model, tmp_path / "tiny.safetensors", trained=True, input_pixel_size_nm=30)


def test_round_trip_gives_identical_outputs(model, model_file, em_slice):
    loaded = load_model(model_file)
    x = torch.from_numpy(em_slice[:40, :44].astype(np.float32) / 255)[None, None]
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert loaded.config == model.config
    assert not loaded.training


def test_metadata_round_trip(model, tmp_path):
    provenance = {"data": "FlyEM FIB-SEM (CC BY 3.0)", "strategy": "synthetic-ii", "steps": 1200, "metrics": {"ssim": 0.7}}
    path = save_model(
        model,
        tmp_path / "m.safetensors",
        name="tiny",
        trained=True,
        input_pixel_size_nm=30,
        normalization={"mode": "percentile", "low": 0.5, "high": 99.5},
        provenance=provenance,
    )
    meta = load_model(path).metadata
    assert meta.name == "tiny" and meta.trained and meta.input_pixel_size_nm == 30.0
    assert meta.normalization.mode == "percentile" and meta.normalization.high == 99.5
    assert meta.provenance == provenance


def test_random_weights_are_marked_untrained(model, tmp_path):
    assert load_model(save_model(model, tmp_path / "r.safetensors")).metadata.trained is False


def test_loading_never_unpickles(model_file, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_model must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_model(model_file)


def test_existing_file_is_not_overwritten(model, model_file):
    before = model_file.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        save_model(model, model_file)
    assert model_file.read_bytes() == before
    save_model(model, model_file, overwrite=True, name="again")
    assert load_model(model_file).metadata.name == "again"


def test_failed_save_leaves_nothing(model, tmp_path):
    with pytest.raises(ValueError):
        save_model(model, tmp_path / "bad.safetensors", input_pixel_size_nm=-3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_model(model, tmp_path / "no" / "such" / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


# -- bad files: each error names the file and the problem -----------------------------------------
def _expect(path, match):
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.safetensors", "no such file")


def test_empty_file(tmp_path):
    (tmp_path / "e.safetensors").write_bytes(b"")
    _expect(tmp_path / "e.safetensors", "empty or truncated")


def test_pytorch_checkpoint_is_refused_without_unpickling(model, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    _expect(path, "never unpickles")
    plain = tmp_path / "model.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _expect(plain, "pickle")


def test_image_given_as_model(tmp_path, data_dir):
    src = sorted((data_dir / "validation_sample").glob("*.png"))[0]
    path = tmp_path / "slice.png"
    path.write_bytes(src.read_bytes())
    _expect(path, "an image, not a model")


def test_random_bytes(tmp_path, rng):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect(path, "not a safetensors file")


def test_foreign_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    _expect(path, "not a napari-emsr model")


def test_truncated_file(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) - 1000])
    _expect(model_file, "truncated")


def test_corrupt_header(model_file):
    data = bytearray(model_file.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    data[8 : 8 + n] = b"{" * n
    model_file.write_bytes(bytes(data))
    _expect(model_file, "header is not valid JSON")


def _rewrite_emsr(path, change):
    """Rewrite the 'emsr' metadata entry of a model file, keeping its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    emsr = json.loads(meta["emsr"])
    change(emsr, tensors)
    meta["emsr"] = json.dumps(emsr)
    save_file(tensors, str(path), metadata=meta)


def test_weights_that_do_not_match_the_config(model_file):
    _rewrite_emsr(model_file, lambda emsr, t: emsr["config"].update(channels=16))
    _expect(model_file, "do not match the network config")


def test_missing_tensor(model_file):
    _rewrite_emsr(model_file, lambda emsr, t: t.pop("head.weight"))
    _expect(model_file, "1 missing")


def test_invalid_config_in_file(model_file):
    _rewrite_emsr(model_file, lambda emsr, t: emsr["config"].update(scale=7))
    _expect(model_file, "invalid network config: scale must be between 1 and 4")


def test_non_finite_weights(model_file):
    _rewrite_emsr(model_file, lambda emsr, t: t["head.weight"].fill_(float("nan")))
    _expect(model_file, "NaN")


def test_unsupported_format_version(model, tmp_path):
    path = tmp_path / "v9.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": FORMAT_NAME, "format_version": "9", "emsr": "{}"})
    _expect(path, "version '9' is not supported")


def test_metadata_validation():
    with pytest.raises(ValueError, match="low"):
        ModelMetadata(normalization={"mode": "range", "low": 10, "high": 5})
    with pytest.raises(ValueError, match="unknown metadata key"):
        ModelMetadata.from_dict({"pixel_size": 3})
