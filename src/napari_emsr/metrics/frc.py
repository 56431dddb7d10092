"""Fourier ring correlation (paper eq. 19): curves, their mean, thresholds and resolution.

Convention (so that mean FRC compares with the paper's Table I): subtract each image's mean; 2D
FFT; the ring of a Fourier pixel is ``round(|f| * min(H, W))`` with ``f = (fy, fx)`` in cycles per
pixel (``numpy.fft.fftfreq``); rings ``1 .. min(H, W) // 2`` are kept (ring 0 is the mean, pixels
beyond Nyquist in the corners are dropped); per ring

    FRC = Re sum(F_a conj(F_b)) / sqrt(sum |F_a|^2 * sum |F_b|^2);

mean FRC is the plain mean over those rings. Ring r has spatial frequency r / min(H, W) cycles per
pixel, so ring widths are equal along both axes of a non-square image. No window is applied unless
asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from napari_emsr.metrics._checks import as_pair
from napari_emsr.metrics._fourier import ring_map, ring_pixel_counts, window_2d

__all__ = [
    "FRCCurve",
    "FRCResolution",
    "frc_curve",
    "frc_mean",
    "frc_pool",
    "frc_resolution",
    "frc_threshold",
    "half_bit_threshold",
    "ONE_SEVENTH",
    "WINDOWS",
]

#: the fixed 1/7 threshold (Rosenthal & Henderson 2003)
ONE_SEVENTH = 1.0 / 7.0
#: per-half-data-set SNR of van Heel & Schatz's half-bit criterion: (sqrt(2) - 1) / 2 = 0.2071
_HALF_BIT_SNR = (np.sqrt(2.0) - 1.0) / 2.0
#: windows that frc_curve accepts
WINDOWS = (None, "hann", "tukey")
_MIN_SIZE = 8


@dataclass(frozen=True)
class FRCCurve:
    """An FRC curve and the ring sums it was computed from (one slice, or several pooled).

    Attributes
    ----------
    frc : ndarray, shape (R,)
        FRC per ring, R = min(H, W) // 2; 0 where a ring holds no power in either image.
    rings : ndarray of int, shape (R,)
        Ring indices 1 .. R.
    frequency : ndarray, shape (R,)
        Spatial frequency of each ring in cycles per pixel, ``rings / min(H, W)`` (0.5 = Nyquist).
    n_pixels : ndarray of int, shape (R,)
        Fourier pixels in each ring, summed over pooled slices.
    n_effective : ndarray, shape (R,)
        Independent Fourier pixels in each ring: ``n_pixels`` without a window, fewer with one
        (a window correlates neighbouring Fourier pixels). The FRC of independent noise has standard
        deviation ``1 / sqrt(n_effective)``; the half-bit threshold uses it.
    cross, power_a, power_b : ndarray, shape (R,)
        ``Re sum F_a conj(F_b)``, ``sum |F_a|^2`` and ``sum |F_b|^2`` per ring (after any window).
    shape : tuple of int
        (H, W) of the compared images.
    window : str or None
        The window applied before the FFT.
    pixel_size_nm : float or None
        Pixel size of the images in nm, if known.
    label : str
        What was compared, e.g. ``"prediction vs reference"`` or ``"even vs odd slices"``.
    n_slices : int
        Number of slice pairs whose ring sums are pooled in this curve.
    """

    frc: np.ndarray
    rings: np.ndarray
    frequency: np.ndarray
    n_pixels: np.ndarray
    n_effective: np.ndarray
    cross: np.ndarray
    power_a: np.ndarray
    power_b: np.ndarray
    shape: tuple[int, int]
    window: str | None = None
    pixel_size_nm: float | None = None
    label: str = ""
    n_slices: int = 1

    @property
    def mean(self) -> float:
        """Mean FRC over rings 1 .. R (the paper's mean FRC)."""
        return float(np.mean(self.frc))

    @property
    def frequency_per_nm(self) -> np.ndarray | None:
        """Spatial frequency of each ring in 1/nm, or None without a pixel size."""
        return None if self.pixel_size_nm is None else self.frequency / self.pixel_size_nm


@dataclass(frozen=True)
class FRCResolution:
    """Where an FRC curve first falls below a threshold.

    Attributes
    ----------
    threshold : str
        ``"1/7"``, ``"half-bit"`` or the fixed value as text.
    reached : bool
        False when the curve stays at or above the threshold up to Nyquist: the resolution is then
        only known to be better than 2 pixels, and the fields below are None.
    ring : float or None
        Crossing position in ring units, linearly interpolated between the last ring above and the
        first ring below the threshold (1.0 when ring 1 is already below).
    frequency : float or None
        Crossing frequency in cycles per pixel.
    resolution_px : float or None
        ``1 / frequency``: the resolved period in pixels.
    resolution_nm : float or None
        ``resolution_px * pixel_size_nm`` when a pixel size is known.
    pixel_size_nm : float or None
        The pixel size used.
    """

    threshold: str
    reached: bool
    ring: float | None
    frequency: float | None
    resolution_px: float | None
    resolution_nm: float | None
    pixel_size_nm: float | None

    def describe(self) -> str:
        """One line for people, e.g. ``"31.4 nm (1/7 threshold)"``."""
        if not self.reached:
            limit = f" = {2 * self.pixel_size_nm:.3g} nm" if self.pixel_size_nm else ""
            return f"not reached ({self.threshold} threshold): better than 2 px{limit}, the Nyquist limit"
        value = f"{self.resolution_nm:.1f} nm" if self.resolution_nm is not None else f"{self.resolution_px:.2f} px"
        return f"{value} ({self.threshold} threshold)"


def _prepare(image: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Subtract the (window-weighted) mean, then apply the window."""
    if weights is None:
        return image - image.mean()
    return weights * (image - np.sum(weights * image) / np.sum(weights))


def frc_curve(
    a,
    b,
    *,
    window: str | None = None,
    tukey_alpha: float = 0.25,
    pixel_size: float | None = None,
    label: str = "",
) -> FRCCurve:
    """Fourier ring correlation of two 2D images (paper eq. 19; convention in the module docstring).

    Parameters
    ----------
    a, b : array_like
        2D images of the same shape (H, W), each side at least 8 pixels; H and W may differ.
    window : {None, "hann", "tukey"}, default None
        Taper applied to both images (after subtracting the window-weighted mean) to suppress the
        cross-shaped artefact that a non-periodic image border leaves in its spectrum. "hann" is
        ``sin^2(pi t)``; "tukey" is flat with cosine edges over ``tukey_alpha`` of each side. Both
        are sampled at pixel centres. None follows the paper (no window).
    tukey_alpha : float, default 0.25
        Fraction of the width tapered by the "tukey" window (0: none, 1: Hann).
    pixel_size : float, optional
        Pixel size in nm, carried by the curve (frequencies in 1/nm, resolution in nm).
    label : str, optional
        What is compared, carried by the curve.

    Returns
    -------
    FRCCurve
        The curve over rings 1 .. min(H, W) // 2, with its ring sums.

    Raises
    ------
    ValueError
        For inputs that are not 2D, differ in shape, are smaller than 8 pixels on a side, contain
        NaN/inf, or are constant (the FRC is then undefined), and for an unknown window.
    """
    x, y = as_pair(a, b, ("a", "b"))
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    if not 0.0 <= tukey_alpha <= 1.0:
        raise ValueError(f"tukey_alpha must lie in [0, 1], got {tukey_alpha}")
    if min(x.shape) < _MIN_SIZE:
        raise ValueError(f"FRC needs images of at least {_MIN_SIZE} pixels on each side, got {x.shape}")
    weights = window_2d(x.shape, window, float(tukey_alpha))
    fa = np.fft.fft2(_prepare(x, weights))
    fb = np.fft.fft2(_prepare(y, weights))
    n_rings = min(x.shape) // 2
    ring = ring_map(x.shape).ravel()

    def per_ring(values: np.ndarray) -> np.ndarray:
        return np.bincount(ring, weights=values.ravel(), minlength=n_rings + 1)[1 : n_rings + 1]

    power_a = per_ring(np.abs(fa) ** 2)
    power_b = per_ring(np.abs(fb) ** 2)
    for name, power in (("a", power_a), ("b", power_b)):
        if power.sum() <= 0:
            raise ValueError(f"image {name} is constant: it has no Fourier power, so its FRC is undefined")
    n_pixels, n_effective = ring_pixel_counts(x.shape, window, float(tukey_alpha))
    return _curve_from_sums(
        cross=per_ring((fa * np.conj(fb)).real),
        power_a=power_a,
        power_b=power_b,
        n_pixels=n_pixels,
        n_effective=n_effective,
        shape=x.shape,
        window=window,
        pixel_size=_check_pixel_size(pixel_size),
        label=label,
        n_slices=1,
    )


def _curve_from_sums(
    *, cross, power_a, power_b, n_pixels, n_effective, shape, window, pixel_size, label, n_slices
) -> FRCCurve:
    denominator = np.sqrt(power_a * power_b)
    frc = np.divide(cross, denominator, out=np.zeros_like(cross), where=denominator > 0)
    rings = np.arange(1, len(cross) + 1)
    return FRCCurve(
        frc=frc,
        rings=rings,
        frequency=rings / min(shape),
        n_pixels=np.asarray(n_pixels, dtype=np.int64),
        n_effective=np.asarray(n_effective, dtype=np.float64),
        cross=cross,
        power_a=power_a,
        power_b=power_b,
        shape=(int(shape[0]), int(shape[1])),
        window=window,
        pixel_size_nm=pixel_size,
        label=label,
        n_slices=n_slices,
    )


def frc_mean(a, b, *, window: str | None = None, tukey_alpha: float = 0.25) -> float:
    """Mean FRC over rings 1 .. min(H, W) // 2 of two 2D images (the paper's mean FRC).

    Same parameters and errors as :func:`frc_curve`; returns ``frc_curve(a, b, ...).mean``.
    """
    return frc_curve(a, b, window=window, tukey_alpha=tukey_alpha).mean


def frc_pool(curves: Sequence[FRCCurve], *, label: str | None = None) -> FRCCurve:
    """Pool the ring sums of curves from several slice pairs into one curve.

    Each ring's cross- and power sums, and its pixel count, are added over the slices, as if the
    ring ran through all of them; this is the FRC of the stack, better determined than any one
    slice's curve (the half-bit threshold accounts for the larger pixel count). It needs only the
    small per-ring sums, so a large stack can be evaluated slice by slice.

    Parameters
    ----------
    curves : sequence of FRCCurve
        Curves of images of one shape, window and pixel size.
    label : str, optional
        Label of the pooled curve; default: the first curve's.

    Returns
    -------
    FRCCurve

    Raises
    ------
    ValueError
        If ``curves`` is empty or the curves differ in shape, window or pixel size.
    """
    curves = list(curves)
    if not curves:
        raise ValueError("frc_pool needs at least one curve")
    first = curves[0]
    for c in curves[1:]:
        if (c.shape, c.window, c.pixel_size_nm) != (first.shape, first.window, first.pixel_size_nm):
            raise ValueError(
                "curves to pool must share shape, window and pixel size; got "
                f"{(first.shape, first.window, first.pixel_size_nm)} and {(c.shape, c.window, c.pixel_size_nm)}"
            )
    return _curve_from_sums(
        cross=sum(c.cross for c in curves),
        power_a=sum(c.power_a for c in curves),
        power_b=sum(c.power_b for c in curves),
        n_pixels=sum(c.n_pixels for c in curves),
        n_effective=sum(c.n_effective for c in curves),
        shape=first.shape,
        window=first.window,
        pixel_size=first.pixel_size_nm,
        label=first.label if label is None else label,
        n_slices=sum(c.n_slices for c in curves),
    )


def half_bit_threshold(n_pixels) -> np.ndarray:
    """Return the half-bit threshold of van Heel & Schatz (2005, eq. 17) for rings of ``n_pixels`` pixels.

    ``T = (S + (2 sqrt(S) + 1) / sqrt(n)) / (S + 1 + 2 sqrt(S) / sqrt(n))`` with the per-half SNR
    ``S = (sqrt(2) - 1) / 2``, i.e. ``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))``:
    1 for a single pixel, falling to 0.1716 for large rings. ``n`` counts every Fourier pixel of the
    ring (both halves of the Hermitian-symmetric spectrum), as in the original paper: the FRC of
    independent white noise then has standard deviation ``1 / sqrt(n)``. For a windowed curve,
    :func:`frc_threshold` passes the effective count ``FRCCurve.n_effective``.
    """
    n = np.asarray(n_pixels, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError("rings must hold at least one pixel for the half-bit threshold")
    root_s, root_n = np.sqrt(_HALF_BIT_SNR), np.sqrt(n)
    return (_HALF_BIT_SNR + (2.0 * root_s + 1.0) / root_n) / (_HALF_BIT_SNR + 1.0 + 2.0 * root_s / root_n)


def frc_threshold(curve: FRCCurve, threshold: str | float = "1/7") -> np.ndarray:
    """Return the threshold value at each ring of ``curve``: ``"1/7"``, ``"half-bit"`` or a fixed number in (0, 1)."""
    if isinstance(threshold, str):
        if threshold == "1/7":
            return np.full(curve.frc.shape, ONE_SEVENTH)
        if threshold == "half-bit":
            return half_bit_threshold(curve.n_effective)
        raise ValueError(f"threshold must be '1/7', 'half-bit' or a number in (0, 1), got {threshold!r}")
    value = float(threshold)
    if not 0.0 < value < 1.0:
        raise ValueError(f"a fixed threshold must lie in (0, 1), got {value}")
    return np.full(curve.frc.shape, value)


def _check_pixel_size(pixel_size) -> float | None:
    if pixel_size is None:
        return None
    value = float(pixel_size)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"pixel size must be a positive number of nm, got {pixel_size}")
    return value


def frc_resolution(
    curve: FRCCurve, *, threshold: str | float = "1/7", pixel_size: float | None = None
) -> FRCResolution:
    """Resolution where ``curve`` first falls below ``threshold``.

    Parameters
    ----------
    curve : FRCCurve
        From :func:`frc_curve` or :func:`frc_pool`.
    threshold : {"1/7", "half-bit"} or float, default "1/7"
        "1/7": the fixed 0.143 criterion. "half-bit": van Heel & Schatz's curve, which depends on
        each ring's (effective) pixel count (:func:`half_bit_threshold`). A float: that fixed value.
    pixel_size : float, optional
        Pixel size in nm; default: the curve's ``pixel_size_nm``. Without either, the resolution
        is given in pixels only.

    Returns
    -------
    FRCResolution
        The first ring scanned from low to high frequency whose FRC is below the threshold; the
        crossing is interpolated linearly from the ring before it. ``reached`` is False if no ring
        falls below.

    Notes
    -----
    Both thresholds were derived for two independent half data sets (see
    :func:`~napari_emsr.metrics.reference_free.reference_free_resolution`). Between a prediction and
    a noisy reference they are a convention that ranks methods, not an absolute resolution. For
    non-periodic images read the resolution from a windowed curve: the border step correlates in
    every ring and can keep an unwindowed curve above the threshold up to Nyquist.
    """
    pixel = _check_pixel_size(pixel_size if pixel_size is not None else curve.pixel_size_nm)
    name = threshold if isinstance(threshold, str) else f"{float(threshold):g}"
    excess = curve.frc - frc_threshold(curve, threshold)
    below = np.flatnonzero(excess < 0)
    if below.size == 0:
        return FRCResolution(name, False, None, None, None, None, pixel)
    i = int(below[0])
    if i == 0:
        ring = float(curve.rings[0])
    else:
        t = excess[i - 1] / (excess[i - 1] - excess[i])
        ring = float(curve.rings[i - 1] + t * (curve.rings[i] - curve.rings[i - 1]))
    frequency = ring / min(curve.shape)
    px = 1.0 / frequency
    return FRCResolution(name, True, ring, frequency, px, None if pixel is None else px * pixel, pixel)

