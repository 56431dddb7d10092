"""Precision of the forward pass: auto's choice by device, bf16 autocast close to fp32 on real EM."""

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr import load_model, super_resolve
from napari_emsr.cli import main
from napari_emsr.device import cpu_has_amx_bf16, resolve_precision
from napari_emsr.model_io import resolve_model_path
from napari_emsr.predict import PredictOptions

CPU = torch.device("cpu")


def test_auto_takes_bf16_on_amx_cpus_and_bf16_gpus_else_fp32(monkeypatch):
    from napari_emsr import device as dev

    monkeypatch.setattr(dev, "cpu_has_amx_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == ("bf16", "auto: this CPU has AMX-BF16 (about 2x fp32, output within 0.001 dB)")
    # a training run quotes the figures of training
    assert resolve_precision("auto", CPU, training=True) == (
        "bf16", "auto: this CPU has AMX-BF16 (about 1.6x the steps of fp32, same quality)")
    monkeypatch.setattr(dev, "cpu_has_amx_bf16", lambda: False)
    assert resolve_precision("auto", CPU) == ("fp32", "auto: no AMX-BF16 on this CPU")
    assert resolve_precision("fp32", CPU) == ("fp32", "asked")
    assert resolve_precision("bf16", CPU)[1].startswith("asked (this CPU has no AMX-BF16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == ("bf16", "auto: this GPU has bf16")
    assert resolve_precision("fp16", torch.device("cuda")) == ("fp16", "asked")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda"))[0] == "fp32"
    with pytest.raises(ValueError, match="has no bf16"):
        resolve_precision("bf16", torch.device("cuda"))
    with pytest.raises(ValueError, match="fp16 runs on CUDA GPUs only, not on cpu"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        PredictOptions(precision="fp8")


def test_amx_flag_read_from_cpuinfo():
    text = open("/proc/cpuinfo").read()  # noqa: SIM115 (read once)
    flags = next(line for line in text.splitlines() if line.startswith("flags")).split()
    assert cpu_has_amx_bf16() == ("amx_bf16" in flags)


@pytest.mark.filterwarnings("ignore::napari_emsr.predict.PixelSizeWarning")
def test_bf16_output_is_within_tolerance_of_fp32_on_real_em(data_dir):
    """The shipped x3 model on real FIB-SEM: bf16 autocast vs fp32, through the tiled engine."""
    files = sorted((data_dir / "validation_sample").glob("*.png"))[:2]
    lr = np.stack([imread(f)[::3, ::3][:96, :96] for f in files])  # a coarse view of real slices
    model = load_model(resolve_model_path("em-x3"))
    fp32 = super_resolve(lr, model, tile=64, precision="fp32").astype(float)
    bf16 = super_resolve(lr, model, tile=64, precision="bf16").astype(float)
    assert bf16.shape == fp32.shape == (2, 288, 288)
    psnr = 10 * np.log10(255**2 / np.mean((bf16 - fp32) ** 2))
    assert psnr > 45  # measured about 55 dB (benchmarks/precision.py)
    assert np.abs(bf16 - fp32).max() <= 8 and 0 < np.abs(bf16 - fp32).mean() < 1  # bf16 did run: not identical


@pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")
def test_cli_prints_the_precision_and_why(tmp_path, capsys):
    import tifffile

    from napari_emsr import build_emsr, save_model

    from .conftest import TINY

    torch.manual_seed(0)
    model = save_model(build_emsr(scale=2, **TINY), tmp_path / "m.safetensors")
    tifffile.imwrite(tmp_path / "in.tif", np.random.default_rng(0).integers(0, 255, (1, 32, 32), dtype=np.uint8))
    assert main(["predict", str(tmp_path / "in.tif"), str(tmp_path / "a.tif"), "--model", str(model), "--precision", "fp32"]) == 0
    assert ", fp32 (asked)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "in.tif"), str(tmp_path / "b.tif"), "--model", str(model)]) == 0
    expected = "bf16 (auto: this CPU has AMX-BF16" if cpu_has_amx_bf16() else "fp32 (auto: no AMX-BF16 on this CPU)"
    assert expected in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "in.tif"), str(tmp_path / "c.tif"), "--model", str(model), "--precision", "fp16",
                 "--device", "cpu"]) == 2  # fmt: skip
    assert "fp16 runs on CUDA GPUs only" in capsys.readouterr().err and not (tmp_path / "c.tif").exists()
