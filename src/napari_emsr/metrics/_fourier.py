"""Fourier-ring bookkeeping for the FRC: ring map, windows, and effective pixel counts."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["ring_map", "window_2d", "ring_pixel_counts"]

#: fraction of the window's spectral correlation energy kept when counting effective pixels
_COVER = 0.999
_MAX_OFFSETS = 400


@lru_cache(maxsize=16)
def ring_map(shape: tuple[int, int]) -> np.ndarray:
    """Ring index ``round(|f| * min(H, W))`` of every Fourier pixel (unshifted FFT layout), read-only."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    ring = np.rint(np.hypot(fy, fx) * min(h, w)).astype(np.intp)
    ring.setflags(write=False)
    return ring


def _window_1d(n: int, window: str, tukey_alpha: float) -> np.ndarray:
    """Return a window sampled at pixel centres t = (i + 0.5) / n, symmetric about the image centre."""
    t = (np.arange(n) + 0.5) / n
    if window == "hann":
        return np.sin(np.pi * t) ** 2
    w = np.ones(n)
    if tukey_alpha > 0:
        edge = np.minimum(t, 1.0 - t)
        taper = edge < tukey_alpha / 2
        w[taper] = 0.5 * (1.0 - np.cos(2.0 * np.pi * edge[taper] / tukey_alpha))
    return w


@lru_cache(maxsize=16)
def window_2d(shape: tuple[int, int], window: str | None, tukey_alpha: float) -> np.ndarray | None:
    """Return the separable 2D window ("hann" or "tukey"), or None for no window; read-only."""
    if window is None:
        return None
    w = np.outer(_window_1d(shape[0], window, tukey_alpha), _window_1d(shape[1], window, tukey_alpha))
    w.setflags(write=False)
    return w


@lru_cache(maxsize=16)
def ring_pixel_counts(shape: tuple[int, int], window: str | None, tukey_alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per ring and effective independent pixels per ring, rings 1 .. min(H, W) // 2.

    A window correlates neighbouring Fourier pixels: for white noise, ``X = DFT(w x)`` has
    covariance ``C(k - k') ~ DFT(w^2)(k - k')``. The FRC numerator over a ring then has variance
    ``sum_{k, k' in ring} |C(k - k')|^2`` (the pseudo-covariance of a real image adds an equal
    term), so the FRC of independent noise has standard deviation ``1 / sqrt(n_eff)`` with
    ``n_eff = n^2 / sum_{k, k'} |c(k - k')|^2``, ``c = C / C(0)``. Without a window ``n_eff = n``.
    The sum runs over the offsets that hold 99.9 % of ``|c|^2`` (25 for Hann).
    """
    ring = ring_map(shape)
    n_rings = min(shape) // 2
    counts = np.bincount(ring.ravel(), minlength=n_rings + 1)[1 : n_rings + 1].astype(np.int64)
    w = window_2d(shape, window, tukey_alpha)
    if w is None:
        return counts, counts.astype(np.float64)
    corr = np.abs(np.fft.fft2(w * w)) ** 2
    corr = (corr / corr.flat[0]).ravel()
    order = np.argsort(corr)[::-1]
    cumulative = np.cumsum(corr[order])
    keep = min(int(np.searchsorted(cumulative, _COVER * cumulative[-1])) + 1, _MAX_OFFSETS)
    pair_sum = np.zeros(n_rings)
    for index in order[:keep]:
        dy, dx = np.unravel_index(index, shape)
        same = ring == np.roll(ring, (-dy, -dx), axis=(0, 1))
        pair_sum += corr[index] * np.bincount(ring[same], minlength=n_rings + 1)[1 : n_rings + 1]
    effective = counts.astype(np.float64) ** 2 / pair_sum
    effective.setflags(write=False)
    counts.setflags(write=False)
    return counts, effective
