"""Shared by the predict_* benchmarks: real EM slices, timing, the machine's conv peak, random inits.

Data: FlyEM FIB-SEM validation slices (CC BY 3.0, FlyEM project, Janelia Research Campus (HHMI),
neuroproof_examples; cropped here).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [os.environ.get("EMSR_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"]
DATA = next(Path(p) / "flyem-medulla-fibsem" for p in _CANDIDATES if p and (Path(p) / "flyem-medulla-fibsem").is_dir())


def validation_slices(count: int, size: int = 520) -> np.ndarray:
    """``count`` real uint8 validation slices, cropped to ``size`` x ``size`` (at most 520)."""
    from skimage.io import imread

    files = sorted((DATA / "validation_sample").glob("*.png"))
    return np.stack([imread(files[i % len(files)])[:size, :size] for i in range(count)])


def times(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def conv_peak_gflops(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a 20-layer, 64-channel 3x3 conv net on a 128 x 128 input (channels_last, float32).

    The reference "conv peak" of this machine, measured in the same process as the benchmark.
    """
    net = nn.Sequential(*(nn.Conv2d(64, 64, 3, padding=1) for _ in range(20))).eval()
    net = net.to(memory_format=torch.channels_last)
    x = torch.rand(1, 64, 128, 128).contiguous(memory_format=torch.channels_last)
    flops = 20 * 2 * 64 * 64 * 9 * 128 * 128
    with torch.inference_mode():
        t = times(lambda: net(x), repeats, warmup=2)
    return {"best": flops / min(t) / 1e9, "median": flops / median(t) / 1e9}


def variance_preserving_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise random weights so that the output depends on the whole receptive field.

    PyTorch's default init makes a deep random network nearly ignore its input beyond ~10 pixels,
    which would flatter small halos. Still random weights: this measures the tiling mechanism only.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.01)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * module.in_features**-0.5)
        probe = model(torch.rand(1, 1, 64, 64, generator=gen))
        last = model.mapper[-1]
        k = 0.2 / float(probe.std())
        last.weight.mul_(k)
        last.bias.mul_(k).add_(0.5 - float(probe.mean()) * k)
    return model


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
