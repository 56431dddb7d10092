"""The one rule for the intensity range that PSNR and SSIM use, shared by every front end.

``data_range`` is what the metrics divide by: the range the reference's dtype can hold (uint8: 255,
uint16: 65535, bool: 1), or for floating-point data the max - min of the reference's pixels that are
compared (read once, slice by slice, so a large volume is never loaded whole). ``emsr evaluate``,
the Compare panel and the Fine-tune panel's reference check all call :func:`find_data_range`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from napari_emsr.errors import Hint, HintedValueError
from napari_emsr.metrics._checks import dtype_data_range

__all__ = ["DataRange", "find_data_range", "dtype_data_range"]


@dataclass(frozen=True)
class DataRange:
    """The range used, and where it comes from (for a report: ``"from the reference's dtype (uint8)"``)."""

    value: float
    source: str


def find_data_range(
    dtype: Any,
    planes: Callable[[], Iterable[Any]] | None = None,
    *,
    given: float | None = None,
    name: str = "the reference",
) -> DataRange:
    """Return the data range for a reference of ``dtype``.

    Parameters
    ----------
    dtype : numpy dtype
        The reference's dtype; an integer (or bool) dtype fixes the range.
    planes : callable, optional
        For floating-point data: returns the compared pixels, plane by plane (any array-likes);
        their max - min is the range. Needed only when neither ``given`` nor the dtype fixes it.
    given : float, optional
        A range chosen by the user (must be positive); wins over the rest.
    name : str
        What the reference is called in messages.
    """
    if given is not None:
        if not (given > 0 and math.isfinite(given)):
            raise HintedValueError(f"the data range must be a positive number, got {given}")
        return DataRange(float(given), "given")
    dtype = np.dtype(dtype)
    known = dtype_data_range(dtype)
    if known is not None:
        return DataRange(known, f"from the reference's dtype ({dtype})")
    if planes is None:
        raise ValueError(f"{name} is {dtype}: its data range needs its pixels (pass planes) or a given range")
    low, high = math.inf, -math.inf
    for plane in planes():
        values = np.asarray(plane)
        if values.size == 0:
            continue
        low, high = min(low, float(np.min(values))), max(high, float(np.max(values)))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise HintedValueError(f"{name} contains NaN or infinite values; replace them first")
    if not high > low:
        raise HintedValueError(f"{name} is constant: it has no data range", Hint("data_range", "RANGE", "to set one"))
    return DataRange(high - low, f"{dtype} reference: its max - min ({low:g} .. {high:g})")
