"""The CUDA path, proven on a GPU: run by scripts/gpu-check.sh (`pytest -m gpu`), deselected elsewhere.

Prediction on the GPU equals the CPU's in fp32 within float tolerance; bf16 / fp16 stay within the
stated tolerance of fp32; out-of-memory halving works under a forced small memory cap; training
steps run on the GPU. Real FIB-SEM crops (FlyEM project, Janelia Research Campus (HHMI),
neuroproof_examples, CC BY 3.0).
"""

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr import load_model, super_resolve
from napari_emsr.config import TrainingConfig
from napari_emsr.model_io import resolve_model_path
from napari_emsr.predict.engine import OutOfMemoryWarning
from napari_emsr.training import iter_finetune

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore::napari_emsr.predict.PixelSizeWarning")]


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():  # selected with -m gpu on a machine without one: a failure, not a skip
        pytest.fail("these tests need a CUDA GPU (torch.cuda.is_available() is False): run them on a GPU machine")
    return torch.device("cuda")


@pytest.fixture(scope="module")
def lr(data_dir):
    files = sorted((data_dir / "validation_sample").glob("*.png"))[:3]
    return np.stack([imread(f)[::3, ::3] for f in files])  # 3 x 174 x 174 coarse views of real slices


@pytest.fixture(scope="module")
def model():
    return load_model(resolve_model_path("em-x3"))


def _psnr(a, b):
    return 10 * np.log10(255.0**2 / max(float(np.mean((a.astype(float) - b.astype(float)) ** 2)), 1e-12))


def test_gpu_fp32_equals_cpu_fp32(cuda, lr, model):
    gpu = super_resolve(lr.astype(np.float32) / 255, model, device="cuda", precision="fp32", tile=128)
    cpu = super_resolve(lr.astype(np.float32) / 255, model, device="cpu", precision="fp32", tile=128)
    assert gpu.shape == cpu.shape == (3, 522, 522)
    assert np.abs(gpu - cpu).max() < 2e-3  # float rounding (TF32 is off for convolutions by default)


@pytest.mark.parametrize(("precision", "min_psnr"), [("bf16", 45.0), ("fp16", 50.0)])
def test_gpu_half_precisions_within_tolerance_of_fp32(cuda, lr, model, precision, min_psnr):
    fp32 = super_resolve(lr, model, device="cuda", precision="fp32")
    half = super_resolve(lr, model, device="cuda", precision=precision)
    assert _psnr(half, fp32) > min_psnr and np.abs(half.astype(int) - fp32).max() <= 16


def test_gpu_auto_precision_is_bf16_where_supported(cuda, lr, model):
    from napari_emsr import iter_super_resolve

    plan = next(iter_super_resolve(lr[:1], model, device="cuda")).payload
    assert plan.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32") and plan.device.startswith("cuda")


def test_gpu_out_of_memory_halves_batch_then_tile(cuda, lr, model):
    big = np.tile(lr[:1], (1, 12, 12))  # one 2088 x 2088 LR slice
    expected = super_resolve(big, model, device="cuda", precision="fp32", tile=512, batch=1)
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    try:  # a cap far below what 16 tiles of 2048 px need: the engine must shrink
        torch.cuda.set_per_process_memory_fraction(min(1.0, 1.5e9 / total))
        with pytest.warns(OutOfMemoryWarning):
            out = super_resolve(big, model, device="cuda", precision="fp32", tile=2048, batch=16)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_gpu_training_steps(cuda, lr, tmp_path):
    from napari_emsr import build_emsr

    stack = np.tile(lr, (4, 1, 1))[:, :120, :120]
    config = TrainingConfig(strategy="synthetic-ii", steps=30, val_every=15, patch=32, batch=4, device="cuda",
                            precision="bf16")  # fmt: skip
    events = list(iter_finetune([stack], out=tmp_path / "g.safetensors", config=config,
                                base=build_emsr("lite", scale=3), val_slices="last:2"))  # fmt: skip
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 30 and all(np.isfinite(e.payload.losses["total"]) for e in steps)
    assert events[-1].kind == "done" and load_model(tmp_path / "g.safetensors").metadata.trained
