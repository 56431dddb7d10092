"""From the user's volumes to training volumes and a fixed validation set.

Validation uses held-out z slices (a contiguous block, by default the last ~10 % of the first
volume, since neighbouring EM slices are nearly alike): never sampled for training, always the same
crops, so scores are comparable along a run and across runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from napari_emsr.config import FITTED_STRATEGIES, TrainingConfig
from napari_emsr.errors import Hint, HintedValueError
from napari_emsr.model.metadata import Normalization
from napari_emsr.training.acquisition import synthetic_em
from napari_emsr.training.degrade import synthetic_i, synthetic_ii
from napari_emsr.training.sampler import Volume3D

__all__ = [
    "parse_slices",
    "ValidationSet",
    "TrainingData",
    "build_training_data",
    "NonFiniteDataError",
    "check_finite",
]


class NonFiniteDataError(ValueError):
    """Training data hold NaN or infinite values (found before any training starts).

    ``what`` names the volume (e.g. "HR volume 2 of 3"), ``role`` is "hr" or "lr", ``index`` its
    position in the list given, ``z`` the first slice with such values, ``count`` how many that slice
    has, ``yx`` where the first one is, and ``detail`` the message without ``what``.
    """

    def __init__(self, what: str, role: str | None, index: int | None, z: int, count: int, yx: tuple[int, int]):
        self.what, self.role, self.index, self.z, self.count, self.yx = what, role, index, z, count, yx
        #: the message without the volume's name, for callers that name it otherwise (e.g. by its file)
        self.detail = (
            f"slice {z} has {count} NaN or infinite value(s) (the first at y={yx[0]}, x={yx[1]}); training "
            "needs finite intensities: replace them (e.g. by the slice's median) or leave the slice out"
        )
        super().__init__(f"{what}: {self.detail}")


def check_finite(volume, what: str, *, role: str | None = None, index: int | None = None) -> None:
    """Raise :class:`NonFiniteDataError` naming ``what`` and the first slice with NaN or inf values.

    Integer data cannot hold them and are not read. Float data are read one slice at a time
    (numpy, zarr or dask arrays), so the check needs memory for one slice only.
    """
    if np.dtype(volume.dtype).kind in "biu":
        return
    slices = [volume] if len(volume.shape) == 2 else (volume[z] for z in range(volume.shape[0]))
    for z, image in enumerate(slices):
        finite = np.isfinite(np.asarray(image))
        if not finite.all():
            bad = np.argwhere(~finite)
            raise NonFiniteDataError(what, role, index, z, len(bad), (int(bad[0][0]), int(bad[0][1])))


def parse_slices(spec: str | Sequence[int] | None, depth: int) -> list[int]:
    """Held-out slice indices from a spec: ``"last:10"``, ``"first:5"``, ``"40:50"``, ``"3,7,9"``, a list.

    ``None`` holds out the last ~10 % (at least one slice, and at least one left to train on).
    """
    if depth < 2:
        raise ValueError(f"a stack of {depth} slice(s) cannot be split into training and validation slices")
    if spec is None:
        n = max(1, round(depth * 0.1))
        return list(range(depth - n, depth))
    if not isinstance(spec, str):
        picked = sorted({int(i) for i in spec})
    elif m := re.fullmatch(r"\s*(last|first)\s*:\s*(\d+)\s*", spec):
        n = int(m.group(2))
        picked = list(range(depth - n, depth)) if m.group(1) == "last" else list(range(n))
    elif m := re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", spec):
        picked = list(range(int(m.group(1)), int(m.group(2))))
    elif re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", spec):
        picked = sorted({int(v) for v in spec.split(",")})
    else:
        raise ValueError(f"cannot read validation slices {spec!r}; use e.g. 'last:10', 'first:5', '40:50' or '3,7,9'")
    if not picked or picked[0] < 0 or picked[-1] >= depth:
        raise ValueError(f"validation slices {spec!r} must lie within 0..{depth - 1}")
    if len(picked) >= depth:
        raise ValueError(f"validation slices {spec!r} leave no slice to train on")
    return picked


@dataclass
class ValidationSet:
    """Fixed validation crops: LR inputs (N, 1, c, c) and HR references (N, s*c, s*c), normalised."""

    lr: torch.Tensor
    hr: np.ndarray
    bicubic: np.ndarray
    description: str


@dataclass
class TrainingData:
    """Everything a training run reads: HR (and paired LR) volumes, validation crops, normalisation, notes."""

    hr: list[Volume3D]
    lr: list[Volume3D] | None
    validation: ValidationSet
    normalization: Normalization
    notes: list[str] = field(default_factory=list)
    #: the degradation fitted to the first pair (strategies fitted and real+fitted), else None
    degradation: Any = None
    #: LR volumes without HR for the degradation-consistency term, with a region each to leave out
    unpaired: list[tuple[Volume3D, tuple[int, int, int, int, int, int] | None]] = field(default_factory=list)


def _bounds(volume, norm: Normalization) -> tuple[float, float]:
    if norm.mode == "range":
        return norm.bounds()
    step = max(1, volume.shape[0] // 16)
    return norm.bounds(np.asarray(volume[::step]))


def default_normalization(volume) -> Normalization:
    """0..255 for 8-bit data; 0.1-99.9 percentiles for anything else."""
    if np.dtype(volume.dtype) == np.uint8:
        return Normalization("range", 0, 255)
    return Normalization("percentile", 0.1, 99.9)


def _validation_lr(hr_crop: torch.Tensor, strategy: str, scale: int, seed: int, sampling: Any = None) -> torch.Tensor:
    """LR inputs for validation under the synthetic strategies: the same degradation, fixed seed."""
    if strategy == "axial":  # every crop at the range's typical z factor, a fixed phase per crop
        return sampling.simulate(hr_crop, torch.Generator().manual_seed(seed + 10_007), factor=sampling.typical)
    if strategy == "synthetic-i":
        return synthetic_i(hr_crop, scale)
    if strategy == "synthetic-em":
        return synthetic_em(hr_crop, scale, torch.Generator().manual_seed(seed + 10_007), tone=False)[0]
    return synthetic_ii(hr_crop, scale, torch.Generator().manual_seed(seed + 10_007))


def _validation_set(
    hr: Volume3D, lr: Volume3D | None, held_out: list[int], config: TrainingConfig, scale: int, sampling: Any = None
) -> ValidationSet:
    spread = np.linspace(0, len(held_out) - 1, min(config.val_count, len(held_out))).round().astype(int)
    picks = [held_out[i] for i in spread]
    picks = sorted(set(picks))
    lr_h, lr_w = (n // scale for n in hr.data.shape[1:]) if lr is None else lr.data.shape[1:]
    c = min(config.val_crop, lr_h, lr_w)
    y0, x0 = (lr_h - c) // 2, (lr_w - c) // 2
    hrs = torch.stack([hr.crop(z, y0 * scale, x0 * scale, c * scale) for z in picks])[:, None]
    if lr is None:
        lrs = _validation_lr(hrs, config.strategy, scale, config.seed, sampling)
        how = f"{config.strategy} degradation of the references (fixed seed)"
        if config.strategy == "axial":
            how = (f"the references' rows sampled as sections every {sampling.typical:.3g} px, cubic back "
                   f"(fixed seed); 'bicubic' is cubic interpolation along z")
    else:
        lrs = torch.stack([lr.crop(z, y0, x0, c) for z in picks])[:, None]
        how = "the LR volume"
    from napari_emsr.resample import bicubic_upsample

    ref = hrs[:, 0].numpy()
    inputs = lrs[:, 0].numpy()  # at scale 1 (axial) the input is already on the reference's grid
    bicubic = np.clip(inputs if scale == 1 else bicubic_upsample(inputs, scale, clip=False), 0, 1)
    text = f"{len(picks)} held-out slices {picks}, centre {c}x{c} LR crops; LR from {how}"
    return ValidationSet(lrs.float(), ref, bicubic, text)


def build_training_data(
    hr: Sequence,
    lr: Sequence | None,
    config: TrainingConfig,
    scale: int,
    *,
    val_slices=None,
    normalization: Normalization | None = None,
    degradation: Any = None,
    unpaired_lr: Sequence[tuple[Any, tuple[int, int, int, int, int, int] | None]] = (),
) -> TrainingData:
    """Training volumes and the validation set; validation slices come from the first volume.

    For the ``fitted`` and ``real+fitted`` strategies the degradation HR -> LR is fitted to the first
    pair's training slices (never the held-out ones), on the intensity scale training uses, unless
    ``degradation`` (a :class:`~.fit_degradation.FittedDegradation` fitted the same way, see
    :func:`fit_pair_degradation`) is given. ``unpaired_lr``: LR volumes without HR and, for each, a
    region (z0, z1, y0, y1, x0, x1) its patches must not overlap (the HR field), for the
    degradation-consistency term; they are normalised like the first LR volume.
    """
    synthetic = config.strategy.startswith("synthetic") or config.strategy == "axial"
    if not synthetic and lr is None:
        raise HintedValueError(
            f"strategy {config.strategy!r} needs LR volumes (synthetic strategies make them)",
            Hint("lr", "LR", "(one per HR volume, aligned with it)"),
        )
    for role, volumes in (("hr", hr), ("lr", [] if synthetic or lr is None else lr)):
        for k, volume in enumerate(volumes):
            name = role.upper()
            what = f"{name} volume {k + 1} of {len(volumes)}" if len(volumes) > 1 else f"the {name} volume"
            check_finite(volume, what, role=role, index=k)
    norm = normalization or default_normalization(hr[0] if lr is None or synthetic else lr[0])
    notes = []
    hr_vols: list[Volume3D] = []
    lr_vols: list[Volume3D] | None = None if synthetic else []
    for k, h in enumerate(hr):
        held = parse_slices(val_slices, h.shape[0]) if k == 0 else []
        train = [z for z in range(h.shape[0]) if z not in set(held)]
        paired = None if lr is None or synthetic else lr[k]
        low, high = _bounds(h if paired is None else paired, norm)
        hr_vols.append(Volume3D(h, train, low, high))
        if lr_vols is not None and paired is not None:
            lr_vols.append(Volume3D(paired, train, low, high))
        if k == 0:
            held_out = held
    if config.strategy == "denoised":
        from napari_emsr.metrics import DENOISERS, denoise

        for v in hr_vols:
            v.data = denoise(np.asarray(v.data, dtype=np.float32), denoiser="nl-means", data_range=v.high - v.low)
        notes.append(f"HR references denoised first with {DENOISERS['nl-means']}")
    if config.strategy in FITTED_STRATEGIES:
        assert lr_vols  # fitted strategies are not synthetic: they have their LR volumes
        if degradation is None:
            degradation = fit_pair_degradation(lr_vols[0], hr_vols[0], scale)
        if degradation.scale != scale:
            raise ValueError(f"the degradation was fitted for x{degradation.scale}, the model is x{scale}")
        share = "" if config.strategy == "fitted" else f" for {100 * config.fitted_share:.0f} % of the patches"
        notes.append(f"LR inputs simulated through the degradation fitted to the pair{share}")
    sampling = None
    if config.strategy == "axial":
        sampling = axial_sampling(config, hr_vols[0])
        degradation = sampling
        notes.append(
            f"inputs: xy patches sampled along their rows every {config.z_factor:g}"
            + (f"..{config.z_factor_max:g}" if config.z_factor_max else "")
            + f" px through a {config.section_profile} section profile ({config.section_thickness:g} z step thick), "
            f"noise of one measurement restored (sigma {255 * sampling.noise_sigma:.2f} on 0..255), cubic back"
        )
    unpaired = []
    if config.lambda_consistency > 0:
        assert lr_vols  # a fitted strategy: paired LR volumes exist
        sources = list(unpaired_lr) or [(v.data, None) for v in lr_vols]
        for data, exclude in sources:
            check_finite(data, "the LR volume", role="lr", index=0)
            unpaired.append((Volume3D(data, range(data.shape[0]), lr_vols[0].low, lr_vols[0].high), exclude))
        notes.append(f"degradation-consistency term on LR patches without HR, weight {config.lambda_consistency:g}")
    validation = _validation_set(hr_vols[0], lr_vols[0] if lr_vols else None, held_out, config, scale, sampling)
    return TrainingData(hr_vols, lr_vols, validation, norm, notes, degradation, unpaired)


def axial_sampling(config: TrainingConfig, hr: Volume3D):
    """Return the section sampling of the axial strategy, with the noise of one xy pixel measured on ``hr``.

    The noise sigma is the median, over up to 8 training slices, of Donoho's Haar estimate, in
    the normalised units training uses.
    """
    from napari_emsr.isotropic.sampling import SectionSampling
    from napari_emsr.metrics.noise import noise_sigma

    slices = list(hr.slices)
    picks = [slices[int(i)] for i in np.unique(np.linspace(0, len(slices) - 1, min(8, len(slices))).round())]
    sigma = float(np.median([noise_sigma(np.asarray(hr.data[z], dtype=np.float64)) for z in picks]))
    assert config.z_factor is not None  # the config checks it for the axial strategy
    return SectionSampling(config.z_factor, config.z_factor_max, config.section_profile, config.section_thickness,
                           sigma / (hr.high - hr.low))


def fit_pair_degradation(lr: Volume3D, hr: Volume3D, scale: int, **options: Any):
    """Fit the degradation HR -> LR to a training pair, on its training slices and intensity scale.

    ``options`` go to :func:`~.fit_degradation.fit_degradation`. The held-out slices are left out, so
    validation stays a fair test of the fitted strategies.
    """
    from napari_emsr.training.fit_degradation import fit_degradation

    slices = list(lr.slices)
    count = int(options.pop("max_slices", 8))
    picks = [slices[int(i)] for i in np.unique(np.linspace(0, len(slices) - 1, min(count, len(slices))).round())]
    lr_part = np.stack([np.asarray(lr.data[z]) for z in picks])
    hr_part = np.stack([np.asarray(hr.data[z]) for z in picks])
    return fit_degradation(lr_part, hr_part, scale, lr_bounds=(lr.low, lr.high), hr_bounds=(hr.low, hr.high), **options)
