"""Resolution without any HR reference: the FRC between two independent halves of the data.

When a large LR field has no HR counterpart, the resolution can still be measured from two
images of the same structure whose noise is independent:

- the even and odd slices of a stack (neighbouring slices: the structure changes a little from one
  slice to the next, which lowers the FRC at high frequency, so the estimate is conservative);
- two acquisitions of the same field;
- the network's outputs f(y) and f(y') for two inputs y, y' with independent noise.

Only independent noise makes the FRC a resolution measure: if the halves share noise (e.g.
y' = y + extra noise, as in the paper's training pairs, or one image and a filtered copy of it),
the shared noise correlates and the estimate is too optimistic. The result therefore carries a
label saying what was compared.

:func:`iter_reference_free` is the job of the napari Compare panel without a reference: the even
and odd slices of one stack, or the same slices of two stacks, pair by pair (the pair on screen
first), as events of the ``"evaluate"`` job (see :mod:`napari_emsr.metrics.stack`: ``"start"``,
one ``"slice"`` per pair, ``"done"``, each with a :class:`~napari_emsr.metrics.stack.Scores`).
:func:`pool_pairs` pools the pairs, for it and for :func:`reference_free_resolution`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Sequence

import numpy as np

from napari_emsr.events import Clock, Event
from napari_emsr.metrics.frc import FRCCurve, FRCResolution, frc_curve, frc_pool, frc_resolution
from napari_emsr.metrics.stack import Scores, plane, slice_event

__all__ = [
    "ReferenceFreeResolution",
    "even_odd_halves",
    "reference_free_resolution",
    "pool_pairs",
    "iter_reference_free",
]


@dataclass(frozen=True)
class ReferenceFreeResolution:
    """An FRC resolution estimate from two independent halves.

    Attributes
    ----------
    compared : str
        What the two halves are, e.g. ``"even vs odd slices of stack.tif"``.
    curve : FRCCurve
        The FRC pooled over all slice pairs (labelled with ``compared``).
    resolution : FRCResolution
        Where ``curve`` first falls below the threshold.
    frc_mean : float
        Mean over slice pairs of each pair's mean FRC.
    n_pairs : int
        Number of slice pairs compared.
    """

    compared: str
    curve: FRCCurve
    resolution: FRCResolution
    frc_mean: float
    n_pairs: int

    def describe(self) -> str:
        """One line for people."""
        return (
            f"{self.compared}: resolution {self.resolution.describe()}, mean FRC {self.frc_mean:.3f} "
            f"over {self.n_pairs} slice pair(s)"
        )


def even_odd_halves(stack) -> tuple[np.ndarray, np.ndarray]:
    """Split a (Z, H, W) stack into its even and odd slices, paired as (0, 1), (2, 3), ...

    Parameters
    ----------
    stack : array_like
        A stack of at least two slices; with an odd count the last slice is left out.

    Returns
    -------
    even, odd : ndarray
        Two (Z // 2, H, W) arrays (views where possible).

    Raises
    ------
    ValueError
        If ``stack`` is not 3D or has fewer than two slices.
    """
    array = np.asarray(stack)
    if array.ndim != 3:
        raise ValueError(f"even/odd halves need a (Z, H, W) stack, got shape {array.shape}")
    pairs = array.shape[0] // 2
    if pairs < 1:
        raise ValueError(f"even/odd halves need at least two slices, got {array.shape[0]}")
    return array[0 : 2 * pairs : 2], array[1 : 2 * pairs : 2]


def reference_free_resolution(
    half_a,
    half_b,
    *,
    compared: str,
    threshold: str | float = "half-bit",
    pixel_size: float | None = None,
    window: str | None = "hann",
) -> ReferenceFreeResolution:
    """FRC resolution between two independent halves of the data.

    Parameters
    ----------
    half_a, half_b : array_like
        Two 2D images, or two (Z, H, W) stacks compared slice by slice, of the same shape and with
        independent noise (see the module docstring).
    compared : str
        What the halves are; required, because the number means little without it.
    threshold : {"half-bit", "1/7"} or float, default "half-bit"
        The half-bit criterion suits two half data sets (van Heel & Schatz 2005).
    pixel_size : float, optional
        Pixel size in nm, for a resolution in nm.
    window : {"hann", "tukey", None}, default "hann"
        Passed to :func:`frc_curve`. Two halves of a non-periodic EM field share the step at the
        wrapped image border, whose power lies on the spectrum's axes in every ring; without a
        window it correlates up to Nyquist and the resolution is never reached. The half-bit
        threshold allows for the window (``FRCCurve.n_effective``).

    Returns
    -------
    ReferenceFreeResolution

    Raises
    ------
    ValueError
        If ``compared`` is empty, the halves differ in shape or are not 2D/3D, or for any error of
        :func:`frc_curve`.
    """
    _check_compared(compared)
    a, b = np.asarray(half_a), np.asarray(half_b)
    if a.shape != b.shape:
        raise ValueError(f"the two halves must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"halves must be 2D images or (Z, H, W) stacks, got shape {a.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.shape[0] == 0:
        raise ValueError("the halves hold no slices")
    options: dict[str, Any] = dict(compared=str(compared), threshold=threshold, pixel_size=pixel_size, window=window)
    return pool_pairs([_one_pair(a[z], b[z], **options) for z in range(a.shape[0])], threshold=threshold)


def _check_compared(compared: str) -> None:
    if not str(compared).strip():
        raise ValueError("say what the two halves are with compared=..., e.g. 'even vs odd slices'")


def _one_pair(
    a: Any, b: Any, *, compared: str, threshold: str | float, pixel_size: float | None, window: str | None
) -> ReferenceFreeResolution:
    curve = frc_curve(a, b, window=window, pixel_size=pixel_size, label=compared)
    resolution = frc_resolution(curve, threshold=threshold)
    return ReferenceFreeResolution(compared, curve, resolution, frc_mean=curve.mean, n_pairs=1)


def pool_pairs(
    parts: Sequence[ReferenceFreeResolution], *, threshold: str | float = "half-bit"
) -> ReferenceFreeResolution:
    """Pool estimates from slice pairs (in slice order) into one: ring sums pooled, mean FRC averaged.

    Parameters
    ----------
    parts : sequence of ReferenceFreeResolution
        Estimates of one kind of halves (the first one's ``compared`` is kept).
    threshold : {"half-bit", "1/7"} or float, default "half-bit"
        Threshold of the pooled curve.
    """
    if not parts:
        raise ValueError("pool_pairs needs at least one estimate")
    curve = frc_pool([p.curve for p in parts])
    return ReferenceFreeResolution(
        compared=parts[0].compared,
        curve=curve,
        resolution=frc_resolution(curve, threshold=threshold),
        frc_mean=float(np.mean([p.frc_mean for p in parts])),
        n_pairs=sum(p.n_pairs for p in parts),
    )


def iter_reference_free(
    stack_a: Any,
    stack_b: Any = None,
    *,
    compared: str,
    threshold: str | float = "half-bit",
    pixel_size: float | None = None,
    window: str | None = "hann",
    current: int | None = None,
    whole_stack: bool = True,
) -> Generator[Event, None, None]:
    """Estimate the resolution from independent halves, pair by pair, as events.

    Parameters
    ----------
    stack_a : array_like
        A (Z, H, W) stack (anything with ``shape`` and integer indexing; read one slice at a time).
    stack_b : array_like, optional
        None: the even and odd slices of ``stack_a`` are the halves, paired (0, 1), (2, 3), ...
        Otherwise a second acquisition of the same field, paired slice by slice with ``stack_a``.
    compared : str
        What the halves are (see :func:`reference_free_resolution`).
    threshold, pixel_size, window
        As :func:`reference_free_resolution`.
    current : int, optional
        A slice of ``stack_a``: its pair is scored first (default: the first pair).
    whole_stack : bool, default True
        False: score only that pair.

    Yields
    ------
    Event
        ``"start"``; one ``"slice"`` per pair (payload: a ``Scores`` of scope ``"slice"`` whose ``z``
        is the pair's first slice); ``"done"`` (payload: the pairs pooled with :func:`pool_pairs`, a
        ``Scores`` of scope ``"stack"``; with ``whole_stack=False``, the one pair's).
    """
    _check_compared(compared)
    depth = int(stack_a.shape[0]) if len(stack_a.shape) == 3 else 1
    if stack_b is None:
        pairs = [(z, z + 1) for z in range(0, depth - 1, 2)]
        if not pairs:
            raise ValueError(f"{compared}: even / odd halves need a stack of at least two slices")
    else:
        if tuple(stack_b.shape) != tuple(stack_a.shape):
            shapes = f"{tuple(stack_a.shape)} and {tuple(stack_b.shape)}"
            raise ValueError(f"{compared}: the halves must have the same shape, got {shapes}")
        pairs = [(z, z) for z in range(depth)]
    first = next((p for p in pairs if current in p), pairs[0])
    order = [first] + ([p for p in pairs if p != first] if whole_stack else [])
    second = stack_a if stack_b is None else stack_b
    compared = str(compared)
    options: dict[str, Any] = dict(compared=compared, threshold=threshold, pixel_size=pixel_size, window=window)
    clock = Clock()
    yield slice_event("start", 0, len(order), clock, None, unit="slice pair")
    done: dict[tuple[int, int], ReferenceFreeResolution] = {}
    for i, (za, zb) in enumerate(order):
        done[(za, zb)] = _one_pair(plane(stack_a, za), plane(second, zb), **options)
        scores = Scores("slice", {compared: done[(za, zb)]}, z=za)
        yield slice_event("slice", i + 1, len(order), clock, scores, unit="slice pair")
    if whole_stack:
        pooled = pool_pairs([done[p] for p in sorted(done)], threshold=threshold)
        scores = Scores("stack", {pooled.compared: pooled}, slices=len(done))
    yield slice_event("done", len(order), len(order), clock, scores, unit="slice pair")
