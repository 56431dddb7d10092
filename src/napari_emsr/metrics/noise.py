"""The no-clean-reference check of the paper (eq. 8-9, Fig. 6).

A noisy HR reference x_hat = x_clean + n is good enough to train on when its content dominates its
corruption: E[x_clean] >> E[n] (9a) and var(x_clean) >> var(n) (9b). x_clean is unknown, so it is
estimated by denoising the reference (or given), and n = x_hat - x_clean. "Much greater" is made
numeric: a ratio of at least ``ratio`` (default 10). For scale, the paper's Fig. 6 slice has
E[x_clean] / E[n] = 531 and var(x_clean) / var(n) = 13.9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_emsr.metrics._checks import as_image, as_pair
from napari_emsr.metrics.quality import resolve_data_range

__all__ = ["NoiseCheck", "noise_check", "noise_sigma", "denoise", "DENOISERS"]

#: denoisers from scikit-image that noise_check can apply, slice by slice
DENOISERS = {
    "nl-means": "skimage.restoration.denoise_nl_means (sigma from noise_sigma, h = 0.8 sigma, 5x5 patches, "
    "search distance 6, fast mode)",
    "gaussian": "skimage.filters.gaussian (sigma = 1 pixel)",
}


@dataclass(frozen=True)
class NoiseCheck:
    """Statistics of eq. 8-9 for a reference and its denoised version.

    Intensities are fractions of the data range L (means divided by L, variances by L^2), the scale
    of the paper's Fig. 6. ``n = reference - clean``.

    Attributes
    ----------
    mean_reference, mean_clean, mean_noise : float
        E[x_hat], E[x_clean], E[n].
    var_reference, var_clean, var_noise : float
        var(x_hat), var(x_clean), var(n) (population variances).
    cov_clean_noise : float
        cov(x_clean, n); by eq. 8b, var_reference = var_clean + var_noise + 2 cov_clean_noise, and a
        large value means the denoiser removed structure, not only noise.
    sigma_estimated : float
        The reference's noise standard deviation estimated without a denoiser
        (:func:`noise_sigma`), a cross-check of sqrt(var_noise).
    ratio_mean, ratio_var : float
        E[x_clean] / |E[n]| and var(x_clean) / var(n) (inf when the denominator is 0).
    ratio_var_mad : float
        The (9b) ratio without a denoiser: (var(x_hat) - s^2) / s^2 with s = ``sigma_estimated``
        (eq. 8b for noise uncorrelated with the content). A denoiser that leaves noise in x_clean
        makes ``ratio_var`` too high; this one does not depend on it.
    required_ratio : float
        The ratio that "much greater" means here.
    holds_9a, holds_9b : bool
        ``ratio_mean >= required_ratio`` (and E[x_clean] > 0); ``ratio_var >= required_ratio``.
    denoiser : str
        How x_clean was obtained: "given", or the scikit-image denoiser and its settings.
    data_range : float
        L.
    """

    mean_reference: float
    mean_clean: float
    mean_noise: float
    var_reference: float
    var_clean: float
    var_noise: float
    cov_clean_noise: float
    sigma_estimated: float
    ratio_mean: float
    ratio_var: float
    ratio_var_mad: float
    required_ratio: float
    holds_9a: bool
    holds_9b: bool
    denoiser: str
    data_range: float

    @property
    def ok(self) -> bool:
        """True when both (9a) and (9b) hold: the reference is good enough to train on."""
        return self.holds_9a and self.holds_9b

    def describe(self) -> str:
        """Return a few lines for people, in the paper's terms."""
        verdict = "usable as a training reference" if self.ok else "NOT clean enough by eq. 9"
        return "\n".join(
            [
                f"no-clean-reference check (eq. 8-9), intensities as fractions of L = {self.data_range:g}; "
                f"x_clean by {self.denoiser}",
                f"  E[x_hat] = {self.mean_reference:.3e}  E[x_clean] = {self.mean_clean:.3e}  "
                f"E[n] = {self.mean_noise:.3e}",
                f"  var(x_hat) = {self.var_reference:.3e}  var(x_clean) = {self.var_clean:.3e}  "
                f"var(n) = {self.var_noise:.3e}  cov(x_clean, n) = {self.cov_clean_noise:.2e}",
                f"  (9a) E[x_clean] / |E[n]| = {self.ratio_mean:.3g} -> {'holds' if self.holds_9a else 'fails'} "
                f"(needs >= {self.required_ratio:g})",
                f"  (9b) var(x_clean) / var(n) = {self.ratio_var:.3g} -> {'holds' if self.holds_9b else 'fails'} "
                f"(needs >= {self.required_ratio:g})",
                f"  noise sigma without a denoiser (Haar MAD): {self.sigma_estimated:.3e}, from the denoiser: "
                f"{np.sqrt(self.var_noise):.3e}; (9b) ratio without a denoiser: {self.ratio_var_mad:.3g}",
                f"  verdict: {verdict}",
            ]
        )


def noise_sigma(image) -> float:
    """Estimate the standard deviation of white noise in a 2D image, without a denoiser.

    Donoho's robust estimator: the median absolute value of the finest diagonal Haar wavelet
    coefficients ``(x00 - x01 - x10 + x11) / 2``, divided by 0.6745. Those coefficients cancel
    smooth content, and white noise of variance s^2 gives them variance s^2; the median ignores the
    few large ones at edges.
    """
    x = as_image(image, "image")
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:h, :w]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


def _denoise_slice(image: np.ndarray, denoiser: str) -> np.ndarray:
    from skimage.filters import gaussian
    from skimage.restoration import denoise_nl_means

    if denoiser == "gaussian":
        return gaussian(image, sigma=1.0, mode="reflect", preserve_range=True)
    sigma = noise_sigma(image)
    if sigma == 0.0:
        return image.copy()
    return denoise_nl_means(image, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)


def denoise(image, *, denoiser: str = "nl-means", data_range: float | None = None) -> np.ndarray:
    """Denoise a 2D image or a (Z, H, W) stack slice by slice with a stated scikit-image denoiser.

    Parameters
    ----------
    image : array_like
        2D image or (Z, H, W) stack.
    denoiser : {"nl-means", "gaussian"}
        See :data:`DENOISERS` for the exact settings.
    data_range : float, optional
        L; intensities are divided by it before denoising (the denoisers assume roughly unit
        scale) and multiplied back after. Default: from the integer dtype; required for floats.

    Returns
    -------
    ndarray of float64, same shape as ``image``, in the input's units.
    """
    if denoiser not in DENOISERS:
        raise ValueError(f"denoiser must be one of {sorted(DENOISERS)}, got {denoiser!r}")
    L = resolve_data_range(image, data_range)
    x = as_image(image, "image", ndims=(2, 3)) / L
    if x.ndim == 2:
        return _denoise_slice(x, denoiser) * L
    return np.stack([_denoise_slice(s, denoiser) for s in x]) * L


def noise_check(
    reference,
    denoised=None,
    *,
    denoiser: str = "nl-means",
    ratio: float = 10.0,
    data_range: float | None = None,
) -> NoiseCheck:
    """Check eq. 9 of the paper: whether a noisy reference is clean enough to train on.

    Parameters
    ----------
    reference : array_like
        The HR reference x_hat, a 2D image or a (Z, H, W) stack.
    denoised : array_like, optional
        Its clean estimate x_clean, same shape. Default: made with ``denoiser``.
    denoiser : {"nl-means", "gaussian"}, default "nl-means"
        Used only without ``denoised``; see :data:`DENOISERS`.
    ratio : float, default 10
        What "much greater" means: (9a) and (9b) hold when the content exceeds the corruption by at
        least this factor.
    data_range : float, optional
        L, the intensity scale of the report. Default: from the reference's integer dtype
        (uint8: 255); required for floating-point data.

    Returns
    -------
    NoiseCheck

    Raises
    ------
    ValueError
        For a shape mismatch, NaN/inf values, input that is not 2D or 3D, an unknown denoiser, a
        ratio not above 1, or a missing/invalid data range.
    """
    if not float(ratio) > 1.0:
        raise ValueError(f"ratio (what 'much greater' means) must be above 1, got {ratio}")
    L = resolve_data_range(reference, data_range)
    if denoised is None:
        clean, how = denoise(reference, denoiser=denoiser, data_range=L), DENOISERS[denoiser]
        x = as_image(reference, "reference", ndims=(2, 3))
    else:
        x, clean = as_pair(reference, denoised, ("reference", "denoised"), ndims=(2, 3))
        how = "given"
    x, clean = x / L, clean / L
    noise = x - clean
    sigma = np.mean([noise_sigma(s) for s in (x[None] if x.ndim == 2 else x)])
    mean_clean, mean_noise = float(clean.mean()), float(noise.mean())
    var_clean, var_noise = float(clean.var()), float(noise.var())
    ratio_mean = _ratio(mean_clean, abs(mean_noise))
    ratio_var = _ratio(var_clean, var_noise)
    return NoiseCheck(
        mean_reference=float(x.mean()),
        mean_clean=mean_clean,
        mean_noise=mean_noise,
        var_reference=float(x.var()),
        var_clean=var_clean,
        var_noise=var_noise,
        cov_clean_noise=float(np.mean((clean - mean_clean) * (noise - mean_noise))),
        sigma_estimated=float(sigma),
        ratio_mean=ratio_mean,
        ratio_var=ratio_var,
        ratio_var_mad=_ratio(float(x.var()) - float(sigma) ** 2, float(sigma) ** 2),
        required_ratio=float(ratio),
        holds_9a=bool(mean_clean > 0 and ratio_mean >= ratio),
        holds_9b=bool(ratio_var >= ratio),
        denoiser=how,
        data_range=L,
    )


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return float("inf") if numerator > 0 else float("nan")
    return numerator / denominator
