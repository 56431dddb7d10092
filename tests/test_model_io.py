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


def test_non_floating_point_weights_are_refused(model, model_file):
    """int64 weights of the right shapes would load (cast to float) and predict nonsense."""
    _rewrite_emsr(model_file, lambda emsr, t: t.update({"head.weight": t["head.weight"].round().long()}))
    _expect(model_file, r"head\.weight .*int64.*not floating point")


def test_boolean_weights_are_refused(model, model_file):
    names = set(model.state_dict())
    _rewrite_emsr(model_file, lambda emsr, t: t.update({k: v > 0 for k, v in t.items() if k in names}))
    _expect(model_file, r"bool.*not floating point")


@pytest.mark.parametrize(
    "change", [{"window_size": 8}, {"window_size": 2}, {"num_heads": 4}, {"num_heads": 8, "window_size": 5}]
)
def test_config_values_the_shapes_do_not_fix_must_fit_the_weights(model_file, change):
    """Window size and head count change no tensor shape: the file's recorded output catches them."""
    _rewrite_emsr(model_file, lambda emsr, t: emsr["config"].update(change))
    with pytest.raises(ModelFileError, match="does not reproduce the output recorded") as info:
        load_model(model_file)
    assert str(model_file) in str(info.value)
    assert all(f"{key} {value}" in str(info.value) for key, value in change.items())


def test_the_recorded_output_is_the_networks(model, model_file):
    """The self-check tensors hold the network's own output on their input (and load_model skips them)."""
    from safetensors import safe_open

    from napari_emsr.model_io import SELF_CHECK_PREFIX

    with safe_open(str(model_file), "pt") as f:
        check = {k: f.get_tensor(k) for k in f.keys() if k.startswith(SELF_CHECK_PREFIX)}
    x, y = check[SELF_CHECK_PREFIX + "input"], check[SELF_CHECK_PREFIX + "output"]
    assert x.shape == (1, 1, 20, 20) and y.shape == (1, 1, 60, 60) and x.std() > 0.05
    with torch.inference_mode():
        torch.testing.assert_close(model(x), y, rtol=1e-5, atol=1e-5)
    assert not any(k.startswith(SELF_CHECK_PREFIX) for k in load_model(model_file).state_dict())


def test_files_without_a_recorded_output_still_load(model, model_file):
    """Files written before the self-check existed (e.g. older shipped models) load unchanged."""
    from napari_emsr.model_io import SELF_CHECK_PREFIX

    def drop(emsr, tensors):
        for name in [k for k in tensors if k.startswith(SELF_CHECK_PREFIX)]:
            del tensors[name]

    _rewrite_emsr(model_file, drop)
    loaded = load_model(model_file)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(model, tmp_path, umask, mode):
    import os
    import stat

    old = os.umask(umask)
    try:
        path = save_model(model, tmp_path / "m.safetensors")
        again = save_model(model, path, overwrite=True)  # a replaced file too
    finally:
        os.umask(old)
    assert stat.S_IMODE(again.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize("low_bytes", [b"\x80", b"PK"])
def test_a_header_length_that_starts_like_a_pickle_or_a_zip_is_read(model, tmp_path, low_bytes):
    """The header length's first bytes are whatever the header's size makes them: a model file whose
    header is 0x..80 bytes long (about 1 in 256) must not be taken for a pickle, nor 0x..4b50 for a zip."""
    target, modulus = int.from_bytes(low_bytes, "little"), 256 ** len(low_bytes)
    path = save_model(model, tmp_path / "m.safetensors", name="n")
    base = struct.unpack("<Q", path.read_bytes()[:8])[0]  # each further character of the name adds one byte
    save_model(model, path, overwrite=True, name="n" * (1 + (target - base) % modulus))
    assert path.read_bytes()[: len(low_bytes)] == low_bytes
    assert load_model(path).metadata.name.startswith("n")
