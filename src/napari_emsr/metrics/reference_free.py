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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_emsr.metrics.frc import FRCCurve, FRCResolution, frc_curve, frc_pool, frc_resolution

__all__ = ["ReferenceFreeResolution", "even_odd_halves", "reference_free_resolution"]


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
    if not str(compared).strip():
        raise ValueError("say what the two halves are with compared=..., e.g. 'even vs odd slices'")
    a, b = np.asarray(half_a), np.asarray(half_b)
    if a.shape != b.shape:
        raise ValueError(f"the two halves must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"halves must be 2D images or (Z, H, W) stacks, got shape {a.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.shape[0] == 0:
        raise ValueError("the halves hold no slices")
    curves = [
        frc_curve(a[z], b[z], window=window, pixel_size=pixel_size, label=compared) for z in range(a.shape[0])
    ]
    pooled = frc_pool(curves)
    return ReferenceFreeResolution(
        compared=str(compared),
        curve=pooled,
        resolution=frc_resolution(pooled, threshold=threshold),
        frc_mean=float(np.mean([c.mean for c in curves])),
        n_pairs=len(curves),
    )
