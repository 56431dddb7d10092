"""Intensities in and out of the network: the model's stored normalisation, applied and inverted.

The network works on intensities mapped to about [0, 1]. :func:`resolve_intensity` decides, once
per volume, which raw intensities map to 0 and 1 (the *bounds*); :class:`IntensityMap` applies
them to each block and inverts them on the output, which keeps the input's dtype: integers are
rounded and clipped to their type's range (never wrapped), floats are kept as they come out.

How the bounds are chosen, in order:

1. ``intensity_range=(low, high)`` given by the caller: those.
2. A model with ``mode="percentile"``: those percentiles of a sample of the volume.
3. A model with ``mode="range"`` (e.g. 0..255 for a model trained on 8-bit EM):

   - integer data whose type fits in that range (uint8 for 0..255): the model's range, as is;
   - float data entirely within [0, 1] (an image already normalised, e.g. by skimage's
     ``img_as_float``) and a model range beyond 1: the bounds 0 and 1;
   - data whose 0.1-99.9 percentiles lie within the model's range (e.g. uint16 data that only
     uses 0..255, or float data in 0..255): the model's range, as is;
   - otherwise (e.g. uint16 data reaching 40000 and a 0..255 model) the data are *not* in the
     model's units: their 0.1-99.9 percentiles are mapped onto the model's range (a linear
     contrast stretch, inverted on the output), with an :class:`IntensityWarning` that says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from napari_emsr.errors import EMSRError, Hint
from napari_emsr.model.metadata import Normalization

__all__ = ["IntensityMap", "IntensityWarning", "resolve_intensity", "sample_volume", "check_finite"]


class IntensityWarning(EMSRError, UserWarning):
    """The input's intensities are not in the units the model was trained on; they were rescaled.

    A warning with a :class:`~napari_emsr.errors.Hint` (``intensity_range``) that each front end phrases.
    """


@dataclass(frozen=True)
class IntensityMap:
    """Raw intensities ``low`` and ``high`` map to the network's 0 and 1; outputs go back to ``dtype``."""

    low: float
    high: float
    dtype: np.dtype
    source: str = "model"

    def to_network(self, raw: np.ndarray) -> np.ndarray:
        """Raw block (any real dtype) -> float32 network input."""
        scale = np.float32(1.0 / (self.high - self.low))
        return (raw.astype(np.float32, copy=False) - np.float32(self.low)) * scale

    def from_network(self, values: np.ndarray) -> np.ndarray:
        """Float32 network output -> raw intensities in ``dtype`` (integers rounded and clipped)."""
        dtype = np.dtype(self.dtype)
        # float32 is exact enough for 8/16-bit types and float32; wider types get float64
        work = np.float32 if dtype.itemsize <= 2 or dtype == np.float32 else np.float64
        raw = values.astype(work, copy=False) * work(self.high - self.low) + work(self.low)
        if np.issubdtype(dtype, np.integer):
            ints = np.iinfo(dtype)
            return np.clip(np.rint(raw), ints.min, ints.max).astype(dtype)
        floats = np.finfo(dtype)
        return np.clip(raw, floats.min, floats.max).astype(dtype)

    def to_dict(self) -> dict[str, Any]:
        """Return the map as a plain (JSON-ready) dict."""
        return {"low": self.low, "high": self.high, "dtype": np.dtype(self.dtype).name, "source": self.source}


def check_finite(array: np.ndarray, where: str) -> None:
    """Refuse NaN and infinite values with a message that says what to do."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(
            f"{where} contains {bad} NaN or infinite value(s); super-resolution needs finite intensities: "
            "replace them first (e.g. with numpy.nan_to_num, or mask and fill the region)"
        )


def sample_volume(data: Any, *, max_slices: int = 8, max_side: int = 1024) -> np.ndarray:
    """Up to ``max_slices`` evenly spaced slices, each subsampled to at most ``max_side`` per axis.

    Reads only those slices (a dask array is computed slice by slice); returns a flat array.
    """
    shape = data.shape
    planes = [None] if len(shape) == 2 else sorted(set(np.linspace(0, shape[0] - 1, max_slices).round().astype(int)))
    step_y, step_x = (max(1, math.ceil(n / max_side)) for n in shape[-2:])
    parts = []
    for z in planes:
        plane = data[z] if z is not None else data
        plane = np.asarray(plane[::step_y, ::step_x])
        parts.append(plane.ravel())
    return np.concatenate(parts)


def _native(dtype: Any) -> np.dtype:
    return np.dtype(dtype).newbyteorder("=")


def resolve_intensity(
    data: Any, normalization: Normalization, *, intensity_range: Sequence[float] | None = None
) -> IntensityMap:
    """Decide the bounds for a volume (see the module docstring) and check a sample for NaN/inf.

    Parameters
    ----------
    data : array-like or dask array
        The volume, (z, y, x) or (y, x); only a few slices are read.
    normalization : Normalization
        The model's stored normalisation.
    intensity_range : (float, float), optional
        Raw intensities to map to 0 and 1, overriding the model's normalisation.
    """
    dtype = _native(data.dtype)
    if intensity_range is not None:
        low, high = checked_range(intensity_range)
        return IntensityMap(low, high, dtype, "given")
    if normalization.mode == "percentile":
        sample = sample_volume(data)
        check_finite(sample, "the input")
        low, high = normalization.bounds(sample)
        return IntensityMap(low, high, dtype, "percentile")
    low, high = normalization.bounds()
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if info.min >= low - 0.5 and info.max <= high + 0.5:
            return IntensityMap(low, high, dtype, "model")
    sample = sample_volume(data)
    check_finite(sample, "the input")
    if np.issubdtype(dtype, np.floating) and sample.min() >= 0 and sample.max() <= 1 and high > 1:
        return IntensityMap(0.0, 1.0, dtype, "normalised")
    q_low, q_high = (float(v) for v in np.percentile(sample.astype(np.float64), [0.1, 99.9]))
    tolerance = 1e-3 * (high - low)
    if q_low >= low - tolerance and q_high <= high + tolerance:
        return IntensityMap(low, high, dtype, "model")
    if q_high <= q_low:
        q_high = q_low + 1.0
    warnings.warn(
        IntensityWarning(
            f"the model was trained on intensities {low:g}..{high:g}, but this {dtype.name} input spans "
            f"{q_low:g}..{q_high:g} (0.1-99.9th percentiles): that range is mapped onto the model's (and back "
            "on the output). Convert the data to the model's range first, or choose the range yourself",
            Hint("intensity_range", "(LOW, HIGH)", "to map LOW and HIGH onto the model's range"),
        ),
        stacklevel=3,
    )
    return IntensityMap(q_low, q_high, dtype, "data")


def checked_range(values: Sequence[float]) -> tuple[float, float]:
    """Return ``intensity_range`` as two finite floats with low < high, or say what is wrong with it."""
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"intensity_range must be two numbers (low, high), got {values!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"intensity_range must be finite with low < high, got ({low}, {high})")
    return low, high
