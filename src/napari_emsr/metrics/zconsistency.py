"""z-consistency: whether a slice-wise result keeps the volume's structure across slices or flickers.

Slice-wise super-resolution processes each slice independently, so it can add changes from one
slice to the next that the specimen does not have (flicker). Both measures compare the output with
its input at the input's in-plane grid: the output is first down-sampled by the scale (block means
of ``scale x scale`` pixels), which removes the detail the network added in the plane and keeps
what must agree with the input.

- **flicker index**: ``mean |D(out)[z+1] - D(out)[z]|`` over ``mean |in[z+1] - in[z]|``. 1 means the
  output changes from slice to slice exactly as much as its input; above 1 it adds slice-to-slice
  change (e.g. noise or hallucinated detail that differs between neighbours); below 1 it smooths it
  (denoising lowers it: the input's own noise is part of its slice-to-slice change).
- **xz / yz FRC**: the mean Fourier ring correlation of the output's xz and yz planes (down-sampled
  as above) with the input's, pooled over up to 64 planes each (Hann window). Flicker decorrelates
  the planes along z; so does any change of the input's structure.

:func:`z_consistency` measures one output; :func:`iter_z_consistency` several outputs of one input
(a result and bicubic, as the napari Compare panel does), reading one slice at a time, as events.

Limits: both need the input and the output on the same intensity scale (the engine's outputs are);
the rings of an xz plane mix frequencies along z and along x, so the FRC is not a resolution along z;
a volume with fewer than 8 slices has no xz / yz FRC; and a result can be perfectly z-consistent and
still wrong in every slice (these measure consistency with the input, not correctness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Generator, Mapping

import numpy as np

from napari_emsr.events import Clock, Event
from napari_emsr.metrics.frc import frc_curve, frc_pool
from napari_emsr.metrics.stack import ScoringError, plane, slice_event

__all__ = ["ZConsistency", "z_consistency", "iter_z_consistency", "z_scale", "flicker_index"]

#: at most this many xz (and yz) planes are compared, evenly spaced
PLANES = 64


@dataclass(frozen=True)
class ZConsistency:
    """The z-consistency of a stack against its input (see the module docstring).

    Attributes
    ----------
    flicker_index : float
        Slice-to-slice change of the down-sampled output over that of the input (1: the input's).
    flicker_output, flicker_input : float
        The two mean absolute slice-to-slice differences (input intensity units).
    frc_xz, frc_yz : float or None
        Mean FRC of the xz / yz planes against the input's (None with fewer than 8 slices).
    scale : int
        The in-plane factor from input to output.
    slices : int
        Slices compared.
    """

    flicker_index: float
    flicker_output: float
    flicker_input: float
    frc_xz: float | None
    frc_yz: float | None
    scale: int
    slices: int

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain values."""
        return asdict(self)


def _block_mean(image: np.ndarray, s: int) -> np.ndarray:
    """Means of ``s x s`` blocks of one (H, W) slice (a border that is not a whole block is dropped)."""
    h, w = image.shape[0] // s * s, image.shape[1] // s * s
    return image[:h, :w].reshape(h // s, s, w // s, s).mean(axis=(1, 3))


def flicker_index(stack: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Return (index, stack's mean |slice step|, reference's): both (Z, H, W) on one grid and intensity scale."""
    a = float(np.mean(np.abs(np.diff(np.asarray(stack, np.float64), axis=0))))
    b = float(np.mean(np.abs(np.diff(np.asarray(reference, np.float64), axis=0))))
    if b == 0:
        raise ValueError("the input does not change from slice to slice: a flicker index needs a varying stack")
    return a / b, a, b


def _plane_frc(a: np.ndarray, b: np.ndarray, axis: int) -> float | None:
    """Mean FRC of the planes of ``a`` and ``b`` (Z, H, W) perpendicular to ``axis`` (1: xz planes, 2: yz)."""
    if a.shape[0] < 8 or a.shape[3 - axis] < 8:
        return None
    picks = np.unique(np.linspace(0, a.shape[axis] - 1, min(PLANES, a.shape[axis])).round().astype(int))
    curves = []
    for i in picks:
        pa, pb = (np.take(x, i, axis=axis) for x in (a, b))
        if np.ptp(pa) == 0 or np.ptp(pb) == 0:
            continue
        curves.append(frc_curve(pa, pb, window="hann"))
    return frc_pool(curves).mean if curves else None


def z_scale(output_shape: tuple[int, ...], input_shape: tuple[int, ...], *, scale: int | None = None) -> int:
    """Return the in-plane factor from a (Z, H, W) input to a (Z, s*H, s*W) output, checking their shapes.

    The rule of :func:`z_consistency`: both 3D with the same slices (2+), and the output ``s``
    times the input in y and x, give or take 2 ``s`` pixels (an input cropped to a multiple).

    Raises
    ------
    ValueError
        If either is not a 3D stack, they differ in slices, or the scale does not fit the shapes.
    """
    out, inp = tuple(int(n) for n in output_shape), tuple(int(n) for n in input_shape)
    if len(out) != 3 or len(inp) != 3:
        raise ValueError(f"z-consistency compares 3D (z, y, x) stacks; got shapes {out} and {inp}")
    if out[0] != inp[0] or out[0] < 2:
        raise ValueError(f"the output has {out[0]} slices and the input {inp[0]}: give the same stack, 2+ slices")
    s = scale if scale is not None else max(1, round(out[1] / inp[1]))
    if not all(abs(o - s * i) < s * 2 + 1 for o, i in zip(out[1:], inp[1:], strict=True)):
        raise ValueError(f"output {out[1:]} is not {s} x input {inp[1:]}: give scale, or matching stacks")
    return s


def z_consistency(output: Any, input: Any, *, scale: int | None = None) -> ZConsistency:
    """Measure how consistently ``output`` (Z, s*H, s*W) follows ``input`` (Z, H, W) from slice to slice.

    Parameters
    ----------
    output : array-like
        The result, e.g. a super-resolved stack (numpy, dask or zarr; read one slice at a time).
    input : array-like
        What it was computed from, on the same intensity scale.
    scale : int, optional
        The in-plane factor; default: from the shapes (``output`` may be a few pixels smaller than
        ``s`` times ``input``, as when the input was cropped to a multiple).

    Raises
    ------
    ValueError
        If either is not a 3D stack, they differ in slices, or the scale does not fit the shapes.

    See Also
    --------
    iter_z_consistency : several outputs against one input, as events.
    """
    result = None
    try:
        for event in iter_z_consistency(input, {"output": output}, scale=scale):
            result = event.payload
    except ScoringError as exc:
        raise ValueError(exc.detail.removeprefix("output: ")) from None
    assert isinstance(result, dict)  # the last event is "done"
    return result["output"]


def iter_z_consistency(
    input: Any, outputs: Mapping[str, Any], *, scale: int | None = None
) -> Generator[Event, None, None]:
    """Measure the z-consistency of several outputs against one input stack, slice by slice, as events.

    Each slice of the input, and of every output, is read once (one at a time); what is kept is
    each output down-sampled to the input's grid (float64, the input's size). The numbers are
    :func:`z_consistency`'s.

    Parameters
    ----------
    input : array_like
        The (Z, H, W) input stack, e.g. the LR stack (anything with ``shape`` and integer indexing).
    outputs : mapping of str to array_like
        Label -> a (Z, s*H, s*W) result of it (each with its own ``s``, found from its shape).
    scale : int, optional
        The in-plane factor of every output (default: each one's from its shape).

    Yields
    ------
    Event
        Job ``"evaluate"``, unit ``"slice"``: ``"start"`` (payload: label -> in-plane factor), one
        ``"slice"`` per slice read (payload None), ``"done"`` (payload: label -> :class:`ZConsistency`,
        in the order given). Closing the generator stops it between two slices.

    Raises
    ------
    ScoringError
        (a ValueError, whose ``label`` names the output) For an output whose shape does not fit
        the input (checked for every output before any slice is read), or an input that does not
        change from slice to slice.
    """
    if not outputs:
        raise ValueError("iter_z_consistency needs at least one output to measure")
    scales: dict[str, int] = {}
    for label, output in outputs.items():
        try:
            scales[label] = z_scale(tuple(output.shape), tuple(input.shape), scale=scale)
        except ValueError as exc:
            raise ScoringError(label, f"{label}: {exc}") from None
    depth = int(input.shape[0])
    clock = Clock()
    yield _event("start", 0, depth, clock, dict(scales))
    inp: list[np.ndarray] = []
    down: dict[str, list[np.ndarray]] = {label: [] for label in outputs}
    for z in range(depth):
        inp.append(np.asarray(plane(input, z), np.float64))
        for label, output in outputs.items():
            down[label].append(_block_mean(np.asarray(plane(output, z), np.float64), scales[label]))
        yield _event("slice", z + 1, depth, clock, None)
    low = np.stack(inp)
    results = {}
    for label, slices in down.items():
        stack = np.stack(slices)
        h, w = min(stack.shape[1], low.shape[1]), min(stack.shape[2], low.shape[2])
        a, b = stack[:, :h, :w], low[:, :h, :w]
        try:
            index, step_a, step_b = flicker_index(a, b)
        except ValueError as exc:
            raise ScoringError(label, f"{label}: {exc}") from None
        results[label] = ZConsistency(index, step_a, step_b, _plane_frc(a, b, 1), _plane_frc(a, b, 2),
                                      scales[label], depth)  # fmt: skip
    yield _event("done", depth, depth, clock, results)


def _event(kind: str, done: int, total: int, clock: Clock, payload: Any) -> Event:
    event = slice_event(kind, done, total, clock, payload)
    return replace(event, message=f"z-consistency: {event.message}")
