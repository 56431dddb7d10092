"""Evaluate predicted stacks against a reference, one slice at a time (bounded memory).

Per slice: PSNR, SSIM, mean FRC and FRC resolution; for the stack: the mean and standard deviation
over slices (as the paper's tables), and the resolution of the FRC pooled over all slices
(:func:`~napari_emsr.metrics.frc.frc_pool`). Inputs may be lazy (dask, zarr): only one slice of
each is in memory at a time.

The mean FRC follows the paper's convention (no window), so that it compares with Table I. The
resolution is read, by default, from a Hann-windowed curve: an EM slice is not periodic, and the
step at its wrapped border puts power on the spectrum's axes in every ring. That power is the same
in both images, so without a window it holds the FRC of an image that lacks high frequencies (e.g.
a bicubic up-sampling) well above 1/7 up to Nyquist, and the resolution is never reached.

The one job behind ``emsr evaluate`` and the napari Compare panel is :func:`iter_compare`: several
methods against one reference, slice by slice (the slice on screen first, if asked), as a generator
of :class:`napari_emsr.events.Event` (job ``"evaluate"``, unit ``"slice"``). Its kinds:

- ``"start"``: payload the :class:`~napari_emsr.metrics.data_range.DataRange` used;
- ``"slice"``: one slice scored; payload a :class:`Scores` of scope ``"slice"`` (each method's
  one-slice :class:`StackEvaluation`);
- ``"done"``: payload a :class:`Scores` of scope ``"stack"``, the slices pooled by
  :func:`pool_stack` (with ``whole_stack=False``: the one slice's scores).

:func:`iter_evaluate_stack` is that job for one method (its ``"done"`` payload is the
:class:`StackEvaluation`), and :func:`evaluate_stack` runs it to the end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Generator, Mapping, Sequence

import numpy as np

from napari_emsr.errors import EMSRError, Hint, HintedValueError
from napari_emsr.events import Clock, Event
from napari_emsr.metrics.data_range import DataRange, find_data_range
from napari_emsr.metrics.frc import FRCCurve, FRCResolution, frc_curve, frc_pool, frc_resolution
from napari_emsr.metrics.quality import psnr, ssim

__all__ = [
    "StackEvaluation",
    "EvaluationOptions",
    "Scores",
    "ScoringError",
    "evaluate_stack",
    "iter_evaluate_stack",
    "iter_compare",
    "score_slice",
    "pool_stack",
    "stack_data_range",
    "check_stacks",
    "common_region",
    "plane",
    "slice_event",
    "ANCHORS",
]

#: where the common region of two images that differ by a border sits
ANCHORS = ("top-left", "centre")


@dataclass(frozen=True)
class EvaluationOptions:
    """How stacks are scored: the options of :func:`evaluate_stack`, :func:`iter_compare` and ``emsr evaluate``.

    Attributes
    ----------
    data_range : float, optional
        L for PSNR and SSIM (e.g. 255 for 8-bit data). Default: :func:`stack_data_range` (the
        reference's integer dtype, else its max - min).
    pixel_size : float, optional
        Pixel size in nm, for resolutions in nm.
    threshold : {"1/7", "half-bit"} or float, default "1/7"
        FRC resolution threshold.
    window : {None, "hann", "tukey"}, default None
        FRC window for the mean FRC (None: the paper's convention, comparable with its Table I).
    resolution_window : {None, "hann", "tukey"}, default "hann"
        FRC window for the resolution (see the module docstring; None: the paper's convention).
    crop : {None, "top-left", "centre"}, default None
        None: slice shapes must match. Otherwise each method and the reference are cut to their
        common region, anchored so (see :func:`common_region`), when they differ by no more than a
        border.
    """

    data_range: float | None = None
    pixel_size: float | None = None
    threshold: str | float = "1/7"
    window: str | None = None
    resolution_window: str | None = "hann"
    crop: str | None = None

    def __post_init__(self) -> None:
        if self.crop is not None and self.crop not in ANCHORS:
            raise HintedValueError(f"crop must be None or one of {ANCHORS}, got {self.crop!r}")


@dataclass(frozen=True)
class StackEvaluation:
    """Scores of one stack against a reference.

    Attributes
    ----------
    label : str
        What was compared with the reference, e.g. ``"prediction"`` or ``"bicubic x3"``.
    psnr, ssim, frc_mean : ndarray, shape (Z,)
        Per-slice PSNR (dB), SSIM and mean FRC.
    resolutions : tuple of FRCResolution
        Per-slice FRC resolution.
    curve : FRCCurve
        The FRC pooled over all slices, with the mean-FRC window (None: the paper's convention).
    resolution_curve : FRCCurve
        The pooled FRC with the resolution window (the same object as ``curve`` if the windows agree).
    resolution : FRCResolution
        Resolution of ``resolution_curve``.
    """

    label: str
    psnr: np.ndarray
    ssim: np.ndarray
    frc_mean: np.ndarray
    resolutions: tuple[FRCResolution, ...]
    curve: FRCCurve
    resolution_curve: FRCCurve
    resolution: FRCResolution

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict: means, standard deviations, pooled resolution and ``per_slice``."""
        per_slice = [
            {
                "z": z,
                "psnr": float(self.psnr[z]),
                "ssim": float(self.ssim[z]),
                "frc_mean": float(self.frc_mean[z]),
                "frc_resolution_nm": r.resolution_nm,
                "frc_resolution_px": r.resolution_px,
            }
            for z, r in enumerate(self.resolutions)
        ]
        return {
            "label": self.label,
            "slices": len(self.psnr),
            "psnr": float(np.mean(self.psnr)),
            "psnr_std": float(np.std(self.psnr)) if np.isfinite(self.psnr).all() else None,
            "ssim": float(np.mean(self.ssim)),
            "ssim_std": float(np.std(self.ssim)),
            "frc_mean": float(np.mean(self.frc_mean)),
            "frc_mean_std": float(np.std(self.frc_mean)),
            "frc_window": self.curve.window,
            "frc_resolution_window": self.resolution_curve.window,
            "frc_threshold": self.resolution.threshold,
            "frc_resolution_reached": self.resolution.reached,
            "frc_resolution_nm": self.resolution.resolution_nm,
            "frc_resolution_px": self.resolution.resolution_px,
            "per_slice": per_slice,
        }


def common_region(
    shape_a: tuple[int, int], shape_b: tuple[int, int], *, anchor: str = "top-left", max_border: float = 0.1
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices that cut two (H, W) images to their common region.

    Parameters
    ----------
    shape_a, shape_b : tuple of int
        The two image shapes.
    anchor : {"top-left", "centre"}, default "top-left"
        "top-left": both images start at the same pixel (the case of an HR image cropped to a
        multiple of the scale before it was down-sampled, or of a truncated up-sampled image).
        "centre": the surplus is shared between both sides (the case of a method that loses a
        border all round).
    max_border : float, default 0.1
        Largest allowed difference per axis: this fraction of the larger size, or 8 pixels if that
        is more. Larger differences are not "a border" and raise.

    Returns
    -------
    (slices_a, slices_b) : pair of (slice, slice)

    Raises
    ------
    ValueError
        If ``anchor`` is unknown or the shapes differ by more than ``max_border``.
    """
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
    cuts_a: list[slice] = []
    cuts_b: list[slice] = []
    for axis, (na, nb) in enumerate(zip(shape_a, shape_b, strict=False)):
        n = min(na, nb)
        allowed = max(8.0, max_border * max(na, nb))
        if abs(na - nb) > allowed:
            raise ValueError(
                f"shapes {tuple(shape_a)} and {tuple(shape_b)} differ by {abs(na - nb)} pixels on axis {axis}, "
                f"more than a border (at most {allowed:.0f}); they do not show the same field"
            )
        start_a = (na - n) // 2 if anchor == "centre" else 0
        start_b = (nb - n) // 2 if anchor == "centre" else 0
        cuts_a.append(slice(start_a, start_a + n))
        cuts_b.append(slice(start_b, start_b + n))
    return (cuts_a[0], cuts_a[1]), (cuts_b[0], cuts_b[1])


class ScoringError(HintedValueError):
    """A method that cannot be scored against the reference; ``label`` says which one.

    The message (``detail``) names the method by its label; a front end that knows the method by
    another name (a file) can say so with ``label``.
    """

    def __init__(self, label: str, detail: str, *hints: Hint) -> None:
        self.label = label
        super().__init__(detail, *hints)


@dataclass(frozen=True)
class Scores:
    """The results of one scope of a comparison: ``"slice"`` (with its ``z``) or ``"stack"``.

    Attributes
    ----------
    scope : str
        ``"slice"`` or ``"stack"``.
    results : dict
        Label -> :class:`StackEvaluation` (or
        :class:`~napari_emsr.metrics.reference_free.ReferenceFreeResolution` without a reference),
        in the order the methods were given.
    z : int or None
        The slice (index into the compared stacks) of a ``"slice"`` scope.
    slices : int
        Slices (or slice pairs) pooled.
    data_range : DataRange or None
        The range PSNR and SSIM used (None without a reference).
    """

    scope: str
    results: dict[str, Any]
    z: int | None = None
    slices: int = 1
    data_range: DataRange | None = None


def _slices(array: Any, name: str) -> tuple[int, tuple[int, int]]:
    shape = tuple(int(s) for s in array.shape)
    if len(shape) == 2:
        return 1, (shape[0], shape[1])
    if len(shape) == 3:
        return shape[0], (shape[1], shape[2])
    raise HintedValueError(f"{name}: expected a 2D image or a (Z, H, W) stack, got shape {shape}")


def plane(stack: Any, z: int) -> np.ndarray:
    """Return slice ``z`` of a (Z, H, W) stack, or a 2D image itself (``z`` 0), as a numpy array."""
    return np.asarray(stack if len(stack.shape) == 2 else stack[z])


def check_stacks(
    reference: Any, other: Any, *, label: str, crop: str | None = None
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Check that ``other`` can be scored against ``reference``; return the cuts to their common region.

    Raises
    ------
    ScoringError
        (a ValueError) For different slice counts, slice shapes that differ (without ``crop``,
        with hints to crop), or by more than a border (with ``crop``).
    """
    z_ref, shape_ref = _slices(reference, "the reference")
    try:
        z_other, shape_other = _slices(other, label)
    except HintedValueError as exc:
        raise ScoringError(label, exc.detail) from None
    if z_ref != z_other:
        raise ScoringError(label, f"the reference has {z_ref} slice(s) but the {label} has {z_other}")
    if crop is None and shape_ref != shape_other:
        raise ScoringError(
            label,
            f"slice shapes differ: reference {shape_ref}, {label} {shape_other}",
            Hint("crop", "top-left", "if they differ only by a border at the bottom and right"),
            Hint("crop", "centre", "if they differ by a border all round"),
        )
    try:
        return common_region(shape_ref, shape_other, anchor=crop or "top-left")
    except ValueError as exc:
        raise ScoringError(label, f"{label}: {exc}") from None


def score_slice(
    reference: Any,
    prediction: Any,
    *,
    data_range: float,
    pixel_size: float | None = None,
    threshold: str | float = "1/7",
    window: str | None = None,
    resolution_window: str | None = "hann",
    label: str = "prediction",
) -> StackEvaluation:
    """Score one 2D ``prediction`` against a 2D ``reference``: a :class:`StackEvaluation` of one slice.

    Its ``curve`` and ``resolution_curve`` are the slice's own (unpooled) FRC curves, so that
    :func:`pool_stack` pools the ring sums of the slices themselves.
    """
    name = f"{label} vs reference"
    curve = frc_curve(reference, prediction, window=window, pixel_size=pixel_size, label=name)
    resolution_curve = curve
    if resolution_window != window:
        resolution_curve = frc_curve(reference, prediction, window=resolution_window, pixel_size=pixel_size,
                                     label=name)  # fmt: skip
    resolution = frc_resolution(resolution_curve, threshold=threshold)
    return StackEvaluation(
        label=label,
        psnr=np.array([psnr(reference, prediction, data_range=data_range)], dtype=np.float64),
        ssim=np.array([ssim(reference, prediction, data_range=data_range)], dtype=np.float64),
        frc_mean=np.array([curve.mean], dtype=np.float64),
        resolutions=(resolution,),
        curve=curve,
        resolution_curve=resolution_curve,
        resolution=resolution,
    )


def pool_stack(parts: Sequence[StackEvaluation], *, threshold: str | float = "1/7") -> StackEvaluation:
    """Pool evaluations of slices (or of sub-stacks), in slice order, into one :class:`StackEvaluation`.

    The one pooling of the package: per-slice scores are concatenated (their means and standard
    deviations are the stack's), and the FRC ring sums are pooled with
    :func:`~napari_emsr.metrics.frc.frc_pool`; the resolution is read from the pooled curve.

    Parameters
    ----------
    parts : sequence of StackEvaluation
        In slice order, all of one method (the first one's label is kept).
    threshold : {"1/7", "half-bit"} or float, default "1/7"
        FRC resolution threshold of the pooled curve.
    """
    if not parts:
        raise ValueError("pool_stack needs at least one evaluation")
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


def stack_data_range(reference: Any, given: float | None = None) -> DataRange:
    """Return the data range of a reference stack: :func:`~napari_emsr.metrics.find_data_range` on its slices.

    For floating-point data without ``given``, the max - min of all of ``reference``'s pixels, read
    slice by slice.
    """
    depth, _ = _slices(reference, "the reference")
    return find_data_range(reference.dtype, lambda: (plane(reference, z) for z in range(depth)), given=given)


def _order(depth: int, current: int | None, whole_stack: bool) -> list[int]:
    first = current if current is not None and 0 <= current < depth else 0
    return [first] + ([z for z in range(depth) if z != first] if whole_stack else [])


def iter_compare(
    reference: Any,
    methods: Mapping[str, Any],
    options: EvaluationOptions | None = None,
    *,
    current: int | None = None,
    whole_stack: bool = True,
) -> Generator[Event, None, None]:
    """Score several methods against one reference, slice by slice, as events (see the module docstring).

    Parameters
    ----------
    reference : array_like
        An (H, W) image or a (Z, H, W) stack; numpy, dask or zarr arrays, or any object with
        ``shape``, ``dtype`` and integer indexing (read one slice at a time, once for all methods).
    methods : mapping of str to array_like
        Label -> the stack to score, each with the reference's slices.
    options : EvaluationOptions, optional
        Data range, pixel size, threshold, windows and crop (default: ``EvaluationOptions()``).
    current : int, optional
        The slice to score first (e.g. the one on screen); default the first.
    whole_stack : bool, default True
        False: score only that slice.

    Yields
    ------
    Event
        ``"start"``, one ``"slice"`` per slice, ``"done"`` (see the module docstring).

    Raises
    ------
    ScoringError
        (a ValueError, whose ``label`` names the method) For stacks that do not match the reference
        (checked for every method before any slice is scored), or any error of the metrics on a
        slice (NaN/inf values, constant slices, slices smaller than 8 x 8).
    HintedValueError
        For a data range that is not positive, or a reference whose range cannot be found.
    """
    if not methods:
        raise ValueError("iter_compare needs at least one method to score against the reference")
    options = options or EvaluationOptions()
    cuts = {label: check_stacks(reference, other, label=label, crop=options.crop) for label, other in methods.items()}
    depth, _ = _slices(reference, "the reference")
    found = stack_data_range(reference, options.data_range)
    scoring: dict[str, Any] = dict(data_range=found.value, pixel_size=options.pixel_size, threshold=options.threshold,
                                   window=options.window, resolution_window=options.resolution_window)  # fmt: skip
    order = _order(depth, current, whole_stack)
    clock = Clock()
    yield slice_event("start", 0, len(order), clock, found)
    per: dict[str, dict[int, StackEvaluation]] = {label: {} for label in methods}
    for i, z in enumerate(order):
        ref = plane(reference, z)
        for label, other in methods.items():
            cut_ref, cut_other = cuts[label]
            pred = plane(other, z)[cut_other]
            try:
                per[label][z] = score_slice(ref[cut_ref], pred, label=label, **scoring)
            except ValueError as exc:
                where = f"{label}, slice {z}" if len(reference.shape) == 3 else label
                detail, hints = (exc.detail, exc.hints) if isinstance(exc, EMSRError) else (str(exc), ())
                raise ScoringError(label, f"{where}: {detail}", *hints) from exc
        scores = Scores("slice", {label: done[z] for label, done in per.items()}, z=z, data_range=found)
        yield slice_event("slice", i + 1, len(order), clock, scores)
    if whole_stack:
        pooled = {label: pool_stack([done[z] for z in sorted(done)], threshold=options.threshold)
                  for label, done in per.items()}  # fmt: skip
        scores = Scores("stack", pooled, slices=len(order), data_range=found)
    yield slice_event("done", len(order), len(order), clock, scores)


def slice_event(kind: str, done: int, total: int, clock: Clock, payload: Any, *, unit: str = "slice") -> Event:
    """Return an event of the ``"evaluate"`` job: ``done`` of ``total`` slices (or slice pairs) scored."""
    eta = 0.0 if kind == "done" else clock.eta(done, total)
    return Event("evaluate", kind, done=done, total=total, unit=unit, eta=eta, elapsed=clock.elapsed(),
                 message=f"{done}/{total} {unit}s", payload=payload)  # fmt: skip


def iter_evaluate_stack(
    reference: Any, prediction: Any, options: EvaluationOptions | None = None, *, label: str = "prediction"
) -> Generator[Event, None, None]:
    """Score ``prediction`` against ``reference`` slice by slice, as events.

    :func:`iter_compare` with one method: the same ``"start"`` event, then per slice an event of
    kind ``"slice"`` whose payload is that slice's :class:`StackEvaluation`, and a ``"done"`` event
    whose payload is the stack's :class:`StackEvaluation`. Arguments as :func:`evaluate_stack`.
    """
    events = iter_compare(reference, {label: prediction}, options)
    try:
        for event in events:
            if isinstance(event.payload, Scores):
                event = replace(event, payload=event.payload.results[label])
            yield event
    finally:
        events.close()


def evaluate_stack(reference: Any, prediction: Any, *, label: str = "prediction", **options: Any) -> StackEvaluation:
    """Score ``prediction`` against ``reference`` slice by slice.

    Parameters
    ----------
    reference, prediction : array_like
        (H, W) images or (Z, H, W) stacks with the same number of slices; numpy, dask or zarr
        arrays, or any object with ``shape`` and integer indexing (read one slice at a time).
    label : str, default "prediction"
        What ``prediction`` is.
    **options
        The fields of :class:`EvaluationOptions`: ``data_range``, ``pixel_size``, ``threshold``,
        ``window``, ``resolution_window``, ``crop``.

    Returns
    -------
    StackEvaluation

    Raises
    ------
    ValueError
        (:class:`ScoringError`) For different slice counts, different slice shapes (without
        ``crop``), or any error of the metrics (NaN/inf values, constant slices, slices smaller
        than 8 x 8). TypeError for an unknown option.

    See Also
    --------
    iter_evaluate_stack : the same, as events (progress, and a stop between two slices).
    """
    result = None
    for event in iter_evaluate_stack(reference, prediction, EvaluationOptions(**options), label=label):
        result = event.payload
    assert isinstance(result, StackEvaluation)  # the last event is "done"
    return result
