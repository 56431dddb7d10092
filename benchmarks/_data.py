"""Shared by the benchmarks: the FlyEM FIB-SEM data (CC BY 3.0, FlyEM project, Janelia Research
Campus (HHMI), neuroproof_examples; degraded and cropped here) and an EM-like LR acquisition of it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from skimage.io import imread

from napari_emsr.training.degrade import em_like

ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [os.environ.get("EMSR_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"]
DATA = next(Path(p) / "flyem-medulla-fibsem" for p in _CANDIDATES if p and (Path(p) / "flyem-medulla-fibsem").is_dir())


def load_stack(name: str, slices: slice | list[int] = slice(None)) -> np.ndarray:
    files = sorted((DATA / name).glob("*.png"))
    picked = files[slices] if isinstance(slices, slice) else [files[i] for i in slices]
    return np.stack([imread(f) for f in picked])


def acquire_lr(hr: np.ndarray, scale: int = 3, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """An EM-like x``scale`` acquisition (beam blur, shot, line and read noise) of uint8 ``hr``.

    Returns ``(lr, hr_cropped)``: the uint8 LR stack and the HR cropped to multiples of ``scale``.
    """
    h, w = (n // scale * scale for n in hr.shape[1:])
    hr = hr[:, :h, :w]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, hr.shape[0], 16):
        x = torch.from_numpy(hr[start : start + 16] / 255.0).float()[:, None]
        out.append(em_like(x, scale, gen)[:, 0].numpy())
    lr = (np.clip(np.concatenate(out), 0, 1) * 255).round().astype(np.uint8)
    return lr, hr
