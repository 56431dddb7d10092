"""PSNR and SSIM (paper eq. 17-18): scikit-image's implementations with an explicit data range."""

from __future__ import annotations

import numpy as np

from napari_emsr.metrics._checks import as_pair
from napari_emsr.metrics.data_range import find_data_range

__all__ = ["psnr", "ssim", "resolve_data_range"]


def resolve_data_range(reference, data_range: float | None = None) -> float:
    """Return the data range L used by PSNR and SSIM (the rule of :func:`~napari_emsr.metrics.find_data_range`).

    Parameters
    ----------
    reference : array_like
        The reference image; only its dtype is used when ``data_range`` is None.
    data_range : float, optional
        An explicit range (max - min possible intensity), e.g. 255 for 8-bit data or 1.0 for
        images scaled to [0, 1].

    Returns
    -------
    float
        ``data_range`` if given, else the range of ``reference``'s integer dtype (uint8: 255,
        uint16: 65535).

    Raises
    ------
    ValueError
        If ``data_range`` is not positive and finite, or if it is None and ``reference`` is a
        floating-point image (one image's range is not the range of its possible intensities).
    """
    return find_data_range(np.asarray(reference).dtype, given=data_range).value


def psnr(reference, test, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(L^2 / MSE)`` (paper eq. 18).

    Parameters
    ----------
    reference, test : array_like
        Images of the same shape, (H, W) or a (Z, H, W) stack (one MSE over all its voxels; for the
        paper's per-slice statistics call this per slice). Any real dtype.
    data_range : float, optional
        L. Default: from ``reference``'s integer dtype; required for floating-point data.

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical images.

    Raises
    ------
    ValueError
        For a shape mismatch, NaN/inf values, empty or 1D input, or a missing/invalid data range.
    """
    from skimage.metrics import peak_signal_noise_ratio

    L = resolve_data_range(reference, data_range)
    x, y = as_pair(reference, test, ("reference", "test"), ndims=(2, 3))
    if np.array_equal(x, y):
        return float("inf")
    return float(peak_signal_noise_ratio(x, y, data_range=L))


def ssim(
    reference,
    test,
    *,
    data_range: float | None = None,
    gaussian_weights: bool = True,
) -> float:
    """Mean structural similarity index of two 2D images (paper eq. 17; Wang et al. 2004).

    Parameters
    ----------
    reference, test : array_like
        2D images of the same shape, at least 7 x 7 pixels.
    data_range : float, optional
        L, giving c1 = (0.01 L)^2 and c2 = (0.03 L)^2. Default: from ``reference``'s integer dtype;
        required for floating-point data.
    gaussian_weights : bool, default True
        True: Wang et al.'s original setting, an 11 x 11 Gaussian window of sigma 1.5 with population
        (co)variances, as MATLAB's ``ssim`` and most SR papers. False: scikit-image's default
        7 x 7 uniform window with sample (co)variances.

    Returns
    -------
    float
        Mean SSIM over the image, in [-1, 1].

    Raises
    ------
    ValueError
        For a shape mismatch, NaN/inf values, input that is not 2D or smaller than 7 x 7, or a
        missing/invalid data range.
    """
    from skimage.metrics import structural_similarity

    L = resolve_data_range(reference, data_range)
    x, y = as_pair(reference, test, ("reference", "test"))
    if min(x.shape) < 7:
        raise ValueError(f"SSIM needs images of at least 7 x 7 pixels, got {x.shape}")
    if gaussian_weights:
        options = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    else:
        options = dict(gaussian_weights=False, win_size=7, use_sample_covariance=True)
    return float(structural_similarity(x, y, data_range=L, **options))

