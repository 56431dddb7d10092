"""The "Compare" panel's work, run in its worker thread: the metrics of ``emsr evaluate``, slice by slice.

Each slice of each method is scored with :func:`napari_emsr.metrics.evaluate_stack` (PSNR, SSIM, mean
FRC without a window, resolution from a Hann-windowed FRC, as ``emsr evaluate``); the stack's
scores are those slices combined as ``evaluate_stack`` combines them (means over slices, ring sums
pooled with :func:`~napari_emsr.metrics.frc_pool`), so the numbers equal ``emsr evaluate``'s on the
same pixels while the panel shows progress, the current slice first, and can stop between slices.
Without a reference, :func:`~napari_emsr.metrics.reference_free_resolution` runs on slice pairs
(even / odd slices of one layer, or the same slice of two independent acquisitions) and is pooled
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator

import numpy as np

from napari_emsr._napari.compare.data import Field, Source

__all__ = [
    "CompareJob",
    "Scores",
    "Progressed",
    "iter_compare",
    "iter_reference_free",
    "combine_stack",
    "combine_pairs",
]


@dataclass
class CompareJob:
    """A comparison: the reference (None: reference-free) and the methods, on their common field."""

    sources: list[Source]
    field: Field
    current: int  # reference slice (index into field.z) scored first
    whole_stack: bool
    threshold: str
    resolution_window: str | None
    pixel_size: float | None
    reference: Source | None = None
    data_range: float | None = None
    pairs: str = "even-odd"  # reference-free: "even-odd" (one layer) or "layers" (two layers)


@dataclass
class Scores:
    """Results of one scope: ``"slice"`` (with its z) or ``"stack"``.

    ``results`` maps a label to a StackEvaluation or a ReferenceFreeResolution.
    """

    scope: str
    results: dict[str, Any]
    z: int | None = None
    slices: int = 1
    data_range: float | None = None
    kind: str = "scores"


@dataclass
class Progressed:
    """``done`` of ``total`` slices (or slice pairs) scored."""

    done: int
    total: int
    kind: str = "progress"


def combine_stack(parts: list[Any], threshold: str) -> Any:
    """One StackEvaluation from per-slice ones, in slice order (as :func:`evaluate_stack` pools them)."""
    from napari_emsr.metrics import StackEvaluation, frc_pool, frc_resolution

    curve = frc_pool([p.curve for p in parts])
    shared = parts[0].resolution_curve is parts[0].curve
    resolution_curve = curve if shared else frc_pool([p.resolution_curve for p in parts])
    return StackEvaluation(
        label=parts[0].label,
        psnr=np.concatenate([p.psnr for p in parts]),
        ssim=np.concatenate([p.ssim for p in parts]),
        frc_mean=np.concatenate([p.frc_mean for p in parts]),
        resolutions=tuple(r for p in parts for r in p.resolutions),
        curve=curve,
        resolution_curve=resolution_curve,
        resolution=frc_resolution(resolution_curve, threshold=threshold),
    )


def combine_pairs(parts: list[Any], threshold: str) -> Any:
    """One ReferenceFreeResolution from per-pair ones (as :func:`reference_free_resolution` pools them)."""
    from napari_emsr.metrics import ReferenceFreeResolution, frc_pool, frc_resolution

    curve = frc_pool([p.curve for p in parts])
    return ReferenceFreeResolution(
        compared=parts[0].compared, curve=curve, resolution=frc_resolution(curve, threshold=threshold),
        frc_mean=float(np.mean([p.frc_mean for p in parts])), n_pairs=len(parts),
    )  # fmt: skip


def _data_range(job: CompareJob) -> float:
    """From the reference's dtype (uint8: 255), else the max - min of its compared pixels (as emsr evaluate)."""
    from napari_emsr.metrics._checks import dtype_data_range

    assert job.reference is not None  # a job is made with its reference
    known = dtype_data_range(job.reference.dtype)
    if known is not None:
        return known
    low, high = np.inf, -np.inf
    for z in job.field.z:
        values = job.field.read(job.reference, z)
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("the reference contains NaN or infinite values; replace them first")
    if not high > low:
        raise ValueError("the reference is constant on the compared field: nothing to compare against")
    return high - low


def _order(job: CompareJob, units: list[int]) -> list[int]:
    first = job.current if job.current in units else units[0]
    return [first] + ([u for u in units if u != first] if job.whole_stack else [])


def iter_compare(job: CompareJob) -> Generator[Any, None, None]:
    """Scores of every method against the reference: the current slice first, then the stack."""
    from napari_emsr.metrics import evaluate_stack

    assert job.reference is not None  # a job is made with its reference
    data_range = job.data_range or _data_range(job)
    order = _order(job, list(job.field.z))
    per: dict[str, dict[int, Any]] = {s.label: {} for s in job.sources}
    options: dict[str, Any] = dict(data_range=data_range, pixel_size=job.pixel_size, threshold=job.threshold,
                   resolution_window=job.resolution_window)  # fmt: skip
    for i, z in enumerate(order):
        reference = job.field.read(job.reference, z)
        for source in job.sources:
            per[source.label][z] = evaluate_stack(reference, job.field.read(source, z), label=source.label, **options)
        if i == 0:
            yield Scores("slice", {k: v[z] for k, v in per.items()}, z=z, data_range=data_range)
        yield Progressed(i + 1, len(order))
    if job.whole_stack:
        results = {k: combine_stack([v[z] for z in sorted(v)], job.threshold) for k, v in per.items()}
        yield Scores("stack", results, slices=len(order), data_range=data_range)


def _pairs(job: CompareJob) -> list[tuple[int, int]]:
    """Reference-free slice pairs (reference slice indices): (z, z+1) for even/odd, (z, z) for two layers."""
    zs = list(job.field.z)
    if job.pairs == "layers":
        return [(z, z) for z in zs]
    start = zs[0]
    return [(z, z + 1) for z in range(start, zs[-1], 2)]


def iter_reference_free(job: CompareJob) -> Generator[Any, None, None]:
    """Resolution from two independent halves: the current pair first, then all pairs pooled."""
    from napari_emsr.metrics import reference_free_resolution

    first, second = job.sources[0], job.sources[-1]
    if job.pairs == "layers":
        compared = f"{first.label} vs {second.label} (independent acquisitions)"
    else:
        compared = f"even vs odd slices of {first.label}"
    pairs = _pairs(job)
    if not pairs:
        raise ValueError(f"'{first.label}' has one slice: even / odd halves need a stack (or choose two layers)")
    current = next((p for p in pairs if job.current in p), pairs[0])
    order = [current] + ([p for p in pairs if p != current] if job.whole_stack else [])
    done: dict[tuple[int, int], Any] = {}
    for i, (za, zb) in enumerate(order):
        done[(za, zb)] = reference_free_resolution(
            job.field.read(first, za), job.field.read(second, zb), compared=compared, threshold=job.threshold,
            pixel_size=job.pixel_size, window=job.resolution_window,
        )  # fmt: skip
        if i == 0:
            yield Scores("slice", {compared: done[(za, zb)]}, z=za)
        yield Progressed(i + 1, len(order))
    if job.whole_stack:
        yield Scores("stack", {compared: combine_pairs([done[p] for p in sorted(done)], job.threshold)},
                     slices=len(done))  # fmt: skip
