"""The one rule for the intensity range that PSNR and SSIM use, shared by every front end.

``data_range`` is what the metrics divide by: a range the user gives, else the range the
reference's dtype can hold (uint8: 255, uint16: 65535, bool: 1), else, for floating-point data,
the max - min of the reference's pixels (read once, plane by plane, so a large volume is never
loaded whole). :func:`napari_emsr.metrics.psnr` and :func:`~napari_emsr.metrics.ssim` (through
:func:`~napari_emsr.metrics.resolve_data_range`), :func:`~napari_emsr.metrics.iter_compare`
(``emsr evaluate`` and the Compare panel) and the Fine-tune panel's reference check all call
:func:`find_data_range`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from napari_emsr.errors import Hint, HintedValueError, python_option
from napari_emsr.metrics._checks import dtype_data_range

__all__ = ["DataRange", "find_data_range", "dtype_data_range", "GIVEN"]

#: :attr:`DataRange.source` of a range the user chose
GIVEN = "given"


@dataclass(frozen=True)
class DataRange:
    """The range used, and where it comes from.

    Attributes
    ----------
    value : float
        L, the range PSNR and SSIM use.
    source : str
        Where it comes from, for a report: ``"given"`` (:data:`GIVEN`), ``"from the reference's dtype
        (uint8)"``, or ``"float32 reference: its max - min (0 .. 1)"``.
    hints : tuple of Hint
        How to choose another one (a range read from the pixels can be overridden).
    """

    value: float
    source: str
    hints: tuple[Hint, ...] = ()

    @property
    def given(self) -> bool:
        """Whether the user chose the range."""
        return self.source == GIVEN

    def describe(self, option: Callable[[Hint], str] = python_option) -> str:
        """Return :attr:`source` followed by the :attr:`hints`, each phrased by ``option``."""
        ways = [" ".join(part for part in (option(h), h.purpose) if part) for h in self.hints]
        return "; ".join([self.source, *ways])


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
        For floating-point data: returns the reference's pixels, plane by plane (any array-likes);
        their max - min is the range. Needed only when neither ``given`` nor the dtype fixes it.
    given : float, optional
        A range chosen by the user (must be positive and finite); wins over the rest.
    name : str
        What the reference is called in messages.

    Returns
    -------
    DataRange

    Raises
    ------
    HintedValueError
        (a ValueError) For a ``given`` range that is not positive and finite; for floating-point
        data without ``planes``; for pixels that are not finite, or all the same.
    """
    if given is not None:
        value = float(given)
        if not (value > 0 and math.isfinite(value)):
            raise HintedValueError(
                f"the data range must be a positive finite number, got {given}", Hint("data_range", "L", "above 0")
            )
        return DataRange(value, GIVEN)
    dtype = np.dtype(dtype)
    known = dtype_data_range(dtype)
    if known is not None:
        return DataRange(known, f"from the reference's dtype ({dtype})")
    if planes is None:
        raise HintedValueError(
            f"data_range is required for a {dtype} reference (its range cannot be read from the dtype)",
            Hint("data_range", "L", "the range of possible intensities (e.g. 1.0 for images in [0, 1], 255 for "
                 "8-bit data)"),
        )  # fmt: skip
    low, high = math.inf, -math.inf
    for plane in planes():
        values = np.asarray(plane)
        if values.size == 0:
            continue
        low, high = min(low, float(np.min(values))), max(high, float(np.max(values)))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise HintedValueError(f"{name} contains NaN or infinite values; replace them first")
    if not high > low:
        raise HintedValueError(f"{name} is constant: it has no data range", Hint("data_range", "L", "to set one"))
    override = Hint("data_range", "L", "to override")
    return DataRange(high - low, f"{dtype} reference: its max - min ({low:g} .. {high:g})", (override,))
