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

Limits: both need the input and the output on the same intensity scale (the engine's outputs are);
the rings of an xz plane mix frequencies along z and along x, so the FRC is not a resolution along z;
a volume with fewer than 8 slices has no xz / yz FRC; and a result can be perfectly z-consistent and
still wrong in every slice (these measure consistency with the input, not correctness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from napari_emsr.metrics.frc import frc_curve, frc_pool

__all__ = ["ZConsistency", "z_consistency", "flicker_index"]

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


def _block_mean(stack: np.ndarray, s: int) -> np.ndarray:
    z, h, w = stack.shape
    h, w = h // s * s, w // s * s
    return stack[:, :h, :w].reshape(z, h // s, s, w // s, s).mean(axis=(2, 4))


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


def z_consistency(output: Any, input: Any, *, scale: int | None = None) -> ZConsistency:
    """Measure how consistently ``output`` (Z, s*H, s*W) follows ``input`` (Z, H, W) from slice to slice.

    Parameters
    ----------
    output : array-like
        The result, e.g. a super-resolved stack (numpy, dask or zarr; read whole).
    input : array-like
        What it was computed from, on the same intensity scale.
    scale : int, optional
        The in-plane factor; default: from the shapes (``output`` may be a few pixels smaller than
        ``s`` times ``input``, as when the input was cropped to a multiple).

    Raises
    ------
    ValueError
        If either is not a 3D stack, they differ in slices, or the scale does not fit the shapes.
    """
    out, inp = np.asarray(output, np.float64), np.asarray(input, np.float64)
    if out.ndim != 3 or inp.ndim != 3:
        raise ValueError(f"z-consistency compares 3D (z, y, x) stacks; got shapes {out.shape} and {inp.shape}")
    if out.shape[0] != inp.shape[0] or out.shape[0] < 2:
        raise ValueError(
            f"the output has {out.shape[0]} slices and the input {inp.shape[0]}: give the same stack, 2+ slices"
        )
    s = scale if scale is not None else max(1, round(out.shape[1] / inp.shape[1]))
    if not all(abs(o - s * i) < s * 2 + 1 for o, i in zip(out.shape[1:], inp.shape[1:], strict=True)):
        raise ValueError(f"output {out.shape[1:]} is not {s} x input {inp.shape[1:]}: give scale, or matching stacks")
    down = _block_mean(out, s)
    h, w = min(down.shape[1], inp.shape[1]), min(down.shape[2], inp.shape[2])
    down, inp = down[:, :h, :w], inp[:, :h, :w]
    index, a, b = flicker_index(down, inp)
    return ZConsistency(index, a, b, _plane_frc(down, inp, 1), _plane_frc(down, inp, 2), s, out.shape[0])
