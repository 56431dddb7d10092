"""Device selection and out-of-memory recognition."""

import numpy as np
import pytest
import torch

from napari_emsr.cli._progress import cli_message
from napari_emsr.device import default_batch, default_tile, is_out_of_memory, select_device


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    assert select_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("AUTO") == torch.device("cuda")


def test_explicit_cpu():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")


def test_missing_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"no CUDA GPU is usable.*install a CUDA build of PyTorch.*device='cpu'") as caught:
        select_device("cuda")
    assert "--device" not in str(caught.value)  # the library names its options; the CLI phrases them as flags
    assert cli_message(caught.value).endswith("nvidia-smi: give --device cpu to run on the CPU instead")


def test_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:3' does not exist: this machine has 1 CUDA device"):
        select_device("cuda:3")


def test_missing_mps_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="MPS.*not available.*pass device='cpu', or pass device='auto'") as caught:
        select_device("mps")
    assert cli_message(caught.value).endswith("give --device cpu, or give --device auto")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", ""])
def test_unknown_devices(name):
    with pytest.raises(ValueError, match="device"):
        select_device(name)


def test_out_of_memory_recognition():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("expected input to have 1 channel"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_defaults_depend_on_the_device():
    assert default_tile(torch.device("cpu")) == 256 and default_batch(torch.device("cpu")) == 1
    assert default_tile(torch.device("cpu"), "bf16") == 512  # AMX: larger tiles win (benchmarks/default_tile.py)
    assert default_tile(torch.device("cuda")) == 1024 and default_batch(torch.device("cuda")) == 4
    assert default_tile(torch.device("cuda"), "bf16") == 1024


@pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")
def test_the_plan_takes_the_default_tile_of_its_precision():
    from napari_emsr import build_emsr
    from napari_emsr.predict.plan import make_plan

    model, image = build_emsr("lite", scale=2), np.zeros((600, 600), np.uint8)
    for precision, tile in (("fp32", 256), ("bf16", 512)):
        plan = make_plan(image, model, device="cpu", precision=precision, overlap=0)
        try:
            assert plan.geometry.tile == tile and plan.precision == precision
        finally:
            plan.close()
    plan = make_plan(image, model, device="cpu", precision="bf16", overlap=0, tile=128)
    try:
        assert plan.geometry.tile == 128  # a tile asked for is kept
    finally:
        plan.close()
