"""Train an isotropic-reconstruction network on an anisotropic volume's own xy slices.

No isotropic ground truth exists, and none is needed: the xy slices are sampled at the fine pixel
size in both directions, so sampling their rows the way the sections sample z
(:class:`~napari_emsr.isotropic.sampling.SectionSampling`) makes inputs that look like the
volume's xz / yz planes after cubic interpolation in z, with the slice itself as the (noisy)
reference. The network is EMSR at scale 1 (the paper's enhancer setting): its input is already on
the isotropic grid, which handles any z factor, whole or not, with one architecture. Training is the
paper's, without clean references: the noisier copy y' through the same weights and the three-term
loss, through :func:`napari_emsr.training.trainer.iter_finetune` (same events, checkpoints, resume,
time budget). By default it starts from the body of the shipped ``em-x3`` model, which already
knows EM; only its pixel-shuffle layer starts afresh.
"""

from __future__ import annotations

import os
from typing import Any, Generator

import numpy as np
import torch

from napari_emsr.config import TrainingConfig
from napari_emsr.errors import Hint, HintedValueError
from napari_emsr.events import Event
from napari_emsr.io.readers import as_volume
from napari_emsr.isotropic.reconstruct import resolve_z_factor

__all__ = ["iter_train_isotropic", "train_isotropic", "training_slices", "DEFAULT_BASE", "TRAINING_BYTES"]

#: the model whose weights an isotropic network starts from (all but its pixel-shuffle layer)
DEFAULT_BASE = "em-x3"
#: the most of a volume (bytes) training reads into memory: evenly spaced xy slices up to this size
TRAINING_BYTES = 2 * 10**9


def training_slices(data: Any, limit: int = TRAINING_BYTES) -> np.ndarray:
    """Return the xy slices training reads, in memory: all of them when they fit ``limit`` bytes.

    Else evenly spaced ones. Training draws thousands of random patches: a lazy volume would be
    read again for each.
    """
    depth = int(data.shape[0])
    per_slice = max(1, int(np.prod(data.shape[1:])) * np.dtype(data.dtype).itemsize)
    count = max(2, min(depth, limit // per_slice))
    if count >= depth:
        return np.asarray(data)
    picks = np.unique(np.linspace(0, depth - 1, count).round().astype(int))
    return np.stack([np.asarray(data[int(z)]) for z in picks])


def iter_train_isotropic(
    volume: Any,
    out: str | os.PathLike,
    *,
    z_factor: float | None = None,
    config: TrainingConfig | None = None,
    base: Any = DEFAULT_BASE,
    pixel_size: float | tuple[float, ...] | None = None,
    val_slices: Any = None,
    provenance: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Generator[Event, None, None]:
    """Train a scale-1 network for :func:`~napari_emsr.isotropic.reconstruct.iter_isotropic` on ``volume``.

    Parameters
    ----------
    volume : path, Volume or array-like (z, y, x)
        The anisotropic volume; its xy slices are the training data.
    out : path
        The model file (the best validation by ``config.keep_by``); the last state goes next to it (``resume``).
    z_factor : float, optional
        ``K``, xy pixels per z step; default from the volume's pixel sizes.
    config : TrainingConfig, optional
        Steps, minutes, batch, patch, noise, seed, device...; its strategy becomes ``"axial"`` with
        this ``z_factor`` (a ``z_factor_max``, ``section_profile`` or ``section_thickness`` set
        in it is kept).
    base : EMSR, path, zoo name or None
        Start from this model's weights (at any scale; see
        :func:`~napari_emsr.training.trainer.transfer_to_scale`). A model that is not a scale-1 network
        with a global residual becomes one, whose correction starts at zero: before its first step
        the network's output is its input, cubic interpolation. None: random weights of the lite
        preset (slower to learn).
    val_slices
        Held-out xy slices for validation (default the last ~10 %).

    Yields
    ------
    Event
        Those of :func:`~napari_emsr.training.trainer.iter_finetune` (job ``"train"``).
    """
    from napari_emsr.training.trainer import iter_finetune

    vol, owned = as_volume(volume, pixel_size=pixel_size)
    try:
        if vol.ndim != 3:
            raise ValueError(f"isotropic training needs a (z, y, x) stack, got shape {tuple(vol.shape)}")
        factor, source = resolve_z_factor(z_factor, vol.pixel_size_nm)
        cfg = config or TrainingConfig(steps=2000, batch=4, patch=64, val_every=250)
        largest = cfg.z_factor_max if cfg.strategy == "axial" else None  # a range asked for is kept
        cfg = cfg.replace(strategy="axial", z_factor=factor,
                          z_factor_max=largest if largest is not None and largest >= factor else None)
        cfg = _fitting_patch(cfg, (int(vol.shape[1]), int(vol.shape[2])))
        xy = None
        if vol.pixel_size_nm is not None and vol.pixel_size_nm[-1] is not None:
            xy = float(vol.pixel_size_nm[-1])
        start = None if resume else _start(base, xy)
        prov = {"isotropic": {"z_factor": factor, "z_factor_source": source,
                              "volume": str(vol.path) if vol.path else "array", "shape": list(vol.shape)}}
        prov.update(provenance or {})
        yield from iter_finetune(
            [vol.data], None, out=out, config=cfg, base=start, preset="lite", scale=1, val_slices=val_slices,
            input_pixel_size_nm=xy, provenance=prov, resume=resume, overwrite=overwrite, transfer_scale=True,
        )  # fmt: skip
    finally:
        if owned:
            vol.close()


def _start(base: Any, xy: float | None):
    """Return the network training starts from: scale 1 with a global residual, its correction zero at first."""
    from napari_emsr.config import EMSRConfig
    from napari_emsr.model.emsr import EMSR, build_emsr
    from napari_emsr.model_io import load_model, resolve_model_path
    from napari_emsr.training.trainer import transfer_to_scale

    if base is None:
        torch.manual_seed(0)
        start = build_emsr(EMSRConfig.preset("lite", scale=1, global_residual=1))
        origin = "random weights"
    else:
        origin = (base.metadata.name or "a model") if isinstance(base, EMSR) else str(base)
        start = base if isinstance(base, EMSR) else load_model(resolve_model_path(base))
    if start.config.scale != 1 or not start.config.global_residual:
        start = transfer_to_scale(start, 1, global_residual=1)
        # the correction starts at zero: before its first step the network is cubic interpolation exactly
        last = start.mapper[-1]
        assert isinstance(last, torch.nn.Conv2d)  # the mapper ends with a 3x3 convolution
        torch.nn.init.zeros_(last.weight)
        if last.bias is not None:
            torch.nn.init.zeros_(last.bias)
    # what the base model was measured valid for is not what this network is trained for
    start.metadata = start.metadata.updated(
        name=f"isotropic, from {origin}", trained=False, input_pixel_size_nm=xy, valid_input_pixel_size_nm=None,
        effective_radius_px=None)
    return start


def _fitting_patch(cfg: TrainingConfig, plane: tuple[int, int]) -> TrainingConfig:
    """Return the config with a patch that fits the xy slices with the sampling's context around it."""
    from napari_emsr.isotropic.sampling import SectionSampling

    margin = SectionSampling(cfg.z_factor or 2.0, cfg.z_factor_max, cfg.section_profile, cfg.section_thickness).margin()
    room = min(plane) - 2 * margin
    if room >= cfg.patch:
        return cfg
    if room < 16:
        raise HintedValueError(
            f"xy slices of {plane[0]} x {plane[1]} pixels are too small to train on at a z factor of "
            f"{cfg.z_factor_max or cfg.z_factor:g}: a patch needs {16 + 2 * margin} pixels a side",
            Hint("volume", "a larger field of view"),
        )
    return cfg.replace(patch=int(room))


def train_isotropic(volume: Any, out: str | os.PathLike, **keywords: Any) -> dict[str, Any] | None:
    """Run :func:`iter_train_isotropic` to the end; returns the best validation (with cubic's, as ``"bicubic"``)."""
    best = None
    for event in iter_train_isotropic(volume, out, **keywords):
        if event.kind == "done":
            best = dict(event.payload.best)
    return best
