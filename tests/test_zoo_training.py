"""Training the zoo: synthetic-em end to end, several volumes balanced, bf16 autocast, scale transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr import build_emsr, load_model, save_model
from napari_emsr.config import ConfigError, TrainingConfig
from napari_emsr.training import iter_finetune
from napari_emsr.training.trainer import transfer_to_scale

from .conftest import TINY

# trainings with the zoo's settings
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_volumes(data_dir):
    """Two small real volumes of different size (FlyEM slices), as two 'modalities'."""
    files = sorted((data_dir / "validation_sample").glob("*.png"))[:8]
    stack = np.stack([imread(f) for f in files])
    return [stack[:6, :144, :144], stack[6:, 200:320, 200:320]]


def test_transfer_to_scale_keeps_every_weight_but_the_pixel_shuffle_conv():
    torch.manual_seed(0)
    x3 = build_emsr("lite", **TINY, scale=3)
    save_dummy = x3.metadata.updated(trained=True, name="base")
    x3.metadata = save_dummy
    x2 = transfer_to_scale(x3, 2)
    assert x2.config.scale == 2 and x2.config.replace(scale=3) == x3.config
    a, b = x3.state_dict(), x2.state_dict()
    differ = sorted(k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k], b[k]))
    assert differ == ["upsample.0.bias", "upsample.0.weight"]
    assert not x2.metadata.trained  # an initialisation, never presented as a trained model
    assert x2(torch.rand(1, 1, 16, 16)).shape == (1, 1, 32, 32)


def test_synthetic_em_training_on_two_volumes_in_bf16_from_a_base_at_another_scale(two_volumes, tmp_path):
    torch.manual_seed(0)
    base = build_emsr("lite", **TINY, scale=3)
    base_path = save_model(base, tmp_path / "base.safetensors", trained=True, input_pixel_size_nm=30)
    config = TrainingConfig(strategy="synthetic-em", steps=6, batch=2, patch=16, val_every=3, val_crop=24,
                            balance="volumes", precision="bf16", seed=1, zoom=(1.0, 1.25))  # fmt: skip
    out = tmp_path / "x2.safetensors"
    events = list(iter_finetune(two_volumes, out=out, config=config, base=base_path, scale=2, transfer_scale=True,
                                input_pixel_size_nm=20, val_slices="last:1"))  # fmt: skip
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 6 and all(np.isfinite(v) for e in steps for v in e.payload.losses.values())
    assert any(e.kind == "validation" for e in events) and events[-1].kind == "done"
    model = load_model(out)
    assert model.config.scale == 2 and model.metadata.trained and model.metadata.input_pixel_size_nm == 20
    assert model.metadata.provenance["strategy"] == "synthetic-em"
    assert model.metadata.provenance["zoom"] == [1.0, 1.25]  # the pixel sizes it saw, in the model file
    assert "synthetic-em" in next(e.message for e in events if e.message.startswith("validation:"))
    # without transfer_scale a base at another scale is refused
    with pytest.raises(ValueError, match="x3, but the data need x2"):
        next(iter_finetune(two_volumes, out=tmp_path / "no.safetensors", config=config, base=base_path, scale=2))


def test_training_config_checks_the_zoom_range():
    assert TrainingConfig(strategy="synthetic-em", zoom=[1, 1.6]).zoom == (1.0, 1.6)
    with pytest.raises(ConfigError, match="scale augmentation of the synthetic-em strategy"):
        TrainingConfig(strategy="synthetic-ii", zoom=(1.0, 1.6))
    for bad in [(1.6, 1.0), (0.1, 1.0), (1.0, float("nan")), (1.0, 1.2, 1.4), 1.2, ("a", "b")]:
        with pytest.raises(ConfigError, match="zoom must be a low, high pair"):
            TrainingConfig(strategy="synthetic-em", zoom=bad)


def test_training_config_refuses_unknown_precision_and_balance():
    with pytest.raises(ConfigError, match="precision"):
        TrainingConfig(precision="fp8")
    with pytest.raises(ConfigError, match="balance"):
        TrainingConfig(balance="modalities")


def test_training_precision_auto_takes_bf16_only_where_the_cpu_has_amx(monkeypatch):
    from napari_emsr import device as device_module
    from napari_emsr.training import trainer

    cpu = torch.device("cpu")
    for has_amx, auto in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(device_module, "cpu_has_amx_bf16", lambda has=has_amx: has)
        config, line = trainer.training_precision(TrainingConfig(precision="auto"), cpu)
        assert config.precision == auto and line.startswith(f"precision: {auto} (auto: ")
        assert ("1.6x the steps of fp32" in line) is has_amx  # the figures of training, not of prediction
        assert TrainingConfig().precision == "auto"  # the default, as emsr train / finetune and the Fine-tune panel
        fp32 = TrainingConfig(precision="fp32")
        assert trainer.training_precision(fp32, cpu) == (fp32, "precision: fp32 (as set)")
        config, line = trainer.training_precision(TrainingConfig(precision="bf16"), cpu)
        assert config.precision == "bf16"  # what was asked is kept; without AMX the line says what it costs
        assert ("emulated" in line and "fp32 or auto" in line) is (not has_amx)
    with pytest.raises(ConfigError, match="'auto', 'fp32' or 'bf16'"):
        TrainingConfig(precision="fp16")  # training has no loss scaling


def test_a_run_with_auto_precision_says_what_it_chose_and_records_it(two_volumes, tmp_path, monkeypatch):
    from napari_emsr import device as device_module

    monkeypatch.setattr(device_module, "cpu_has_amx_bf16", lambda: False)
    torch.manual_seed(0)
    config = TrainingConfig(strategy="synthetic-ii", steps=2, batch=1, patch=16, val_every=2, val_crop=24,
                            device="cpu", precision="auto")  # fmt: skip
    out = tmp_path / "m.safetensors"
    events = list(iter_finetune(two_volumes[:1], out=out, config=config, preset="lite", scale=3,
                                val_slices="last:1"))  # fmt: skip
    notes = [e.message for e in events if e.kind == "info" and e.message.startswith("precision:")]
    assert notes == ["precision: fp32 (auto: no AMX-BF16 on this CPU)"]
    assert load_model(out).metadata.provenance["precision"] == "fp32"
