"""Evaluate a predicted stack against a reference, one slice at a time (bounded memory).

Per slice: PSNR, SSIM, mean FRC and FRC resolution; for the stack: the mean and standard deviation
over slices (as the paper's tables), and the resolution of the FRC pooled over all slices
(:func:`~napari_emsr.metrics.frc.frc_pool`). Inputs may be lazy (dask, zarr): only one slice of
each is in memory at a time.

The mean FRC follows the paper's convention (no window), so that it compares with Table I. The
resolution is read, by default, from a Hann-windowed curve: an EM slice is not periodic, and the
step at its wrapped border puts power on the spectrum's axes in every ring. That power is the same
in both images, so without a window it holds the FRC of an image that lacks high frequencies (e.g.
a bicubic up-sampling) well above 1/7 up to Nyquist, and the resolution is never reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from napari_emsr.metrics.frc import FRCCurve, FRCResolution, frc_curve, frc_pool, frc_resolution
from napari_emsr.metrics.quality import psnr, ssim

__all__ = ["StackEvaluation", "evaluate_stack", "common_region", "ANCHORS"]

#: where the common region of two images that differ by a border sits
ANCHORS = ("top-left", "centre")


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


def _slices(array) -> tuple[int, tuple[int, int]]:
    shape = tuple(int(s) for s in array.shape)
    if len(shape) == 2:
        return 1, shape
    if len(shape) == 3:
        return shape[0], shape[1:]
    raise ValueError(f"expected a 2D image or a (Z, H, W) stack, got shape {shape}")


def evaluate_stack(
    reference,
    prediction,
    *,
    data_range: float,
    pixel_size: float | None = None,
    threshold: str | float = "1/7",
    window: str | None = None,
    resolution_window: str | None = "hann",
    crop: str | None = None,
    label: str = "prediction",
    progress: Callable[[int, int], None] | None = None,
) -> StackEvaluation:
    """Score ``prediction`` against ``reference`` slice by slice.

    Parameters
    ----------
    reference, prediction : array_like
        (H, W) images or (Z, H, W) stacks with the same number of slices; numpy, dask or zarr
        arrays, or any object with ``shape`` and integer indexing (read one slice at a time).
    data_range : float
        L for PSNR and SSIM (e.g. 255 for 8-bit data).
    pixel_size : float, optional
        Pixel size in nm, for resolutions in nm.
    threshold : {"1/7", "half-bit"} or float, default "1/7"
        FRC resolution threshold.
    window : {None, "hann", "tukey"}, default None
        FRC window for the mean FRC (None: the paper's convention, comparable with its Table I).
    resolution_window : {None, "hann", "tukey"}, default "hann"
        FRC window for the resolution (see the module docstring; None: the paper's convention).
    crop : {None, "top-left", "centre"}, default None
        None: slice shapes must match. Otherwise both are cut to their common region, anchored so
        (see :func:`common_region`), when they differ by no more than a border.
    label : str, default "prediction"
        What ``prediction`` is.
    progress : callable, optional
        Called as ``progress(done, total)`` after each slice.

    Returns
    -------
    StackEvaluation

    Raises
    ------
    ValueError
        For different slice counts, different slice shapes (without ``crop``), or any error of the
        metrics (NaN/inf values, constant slices, slices smaller than 8 x 8).
    """
    z_ref, shape_ref = _slices(reference)
    z_pred, shape_pred = _slices(prediction)
    if z_ref != z_pred:
        raise ValueError(f"the reference has {z_ref} slice(s) but the {label} has {z_pred}")
    if crop is None and shape_ref != shape_pred:
        raise ValueError(
            f"slice shapes differ: reference {shape_ref}, {label} {shape_pred}; "
            "use crop='top-left' or 'centre' (emsr evaluate --crop) if they differ only by a border"
        )
    cut_ref, cut_pred = common_region(shape_ref, shape_pred, anchor=crop or "top-left")
    values, curves, resolution_curves = [], [], []
    for z in range(z_ref):
        ref = np.asarray(reference if len(reference.shape) == 2 else reference[z])[cut_ref]
        pred = np.asarray(prediction if len(prediction.shape) == 2 else prediction[z])[cut_pred]
        name = f"{label} vs reference"
        curve = frc_curve(ref, pred, window=window, pixel_size=pixel_size, label=name)
        if resolution_window != window:
            resolution_curves.append(frc_curve(ref, pred, window=resolution_window, pixel_size=pixel_size, label=name))
        values.append((psnr(ref, pred, data_range=data_range), ssim(ref, pred, data_range=data_range), curve.mean))
        curves.append(curve)
        if progress is not None:
            progress(z + 1, z_ref)
    pooled = frc_pool(curves)
    resolution_curves = resolution_curves or curves
    pooled_resolution = frc_pool(resolution_curves) if resolution_window != window else pooled
    columns = np.asarray(values, dtype=np.float64).T
    return StackEvaluation(
        label=label,
        psnr=columns[0],
        ssim=columns[1],
        frc_mean=columns[2],
        resolutions=tuple(frc_resolution(c, threshold=threshold) for c in resolution_curves),
        curve=pooled,
        resolution_curve=pooled_resolution,
        resolution=frc_resolution(pooled_resolution, threshold=threshold),
    )
