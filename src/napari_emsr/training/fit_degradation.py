"""Estimate the user's own degradation HR -> LR from a registered pair, and simulate LR scans with it.

The paper found that synthetic training pairs can beat real ones when the degradation is right.
With a located, registered pair (an HR field inside the LR volume, :func:`~.pairs.prepare_pair`),
the degradation does not have to be guessed: :func:`fit_degradation` fits the forward model of
:mod:`napari_emsr.training.acquisition` to it,

    LR = quantise(lines(noise(offset + gain * (area(K * HR)) ** gamma)))

- **blur** ``K``: an elliptical Gaussian probe (sigma along its major axis, across it, and the
  angle of the major axis), followed by area integration over each LR pixel;
- **intensity transfer**: gain, offset and gamma of the LR detector relative to the HR scan;
- **noise**: Poisson-Gaussian, variance ``mu / dose + read_noise**2`` (or ``(1 - mu) / dose + ...``
  for contrast-inverted images, where dark pixels counted many electrons), plus a per-scan-line
  offset; estimated from the LR residuals against the blurred, down-sampled HR, *after* removing what
  the HR's own noise contributes to them (its variance through the fitted blur and integration) and
  the 8-bit quantisation.

How. The blur and the tone curve are fitted together by least squares (Nelder-Mead over the three
blur parameters and gamma; gain and offset in closed form for each), with the blur applied in
Fourier space on the HR grid, so one evaluation costs two FFTs. The noise curve is the residual
variance in intensity bins, fitted by weighted least squares (each bin's weight from the sampling
variance of a variance). Uncertainties are jackknife standard errors over blocks of the data (groups
of slices, or quarters of the field when there are few slices), so correlated pixels are not
counted as independent. The goodness of fit compares an LR simulated from the HR through the fitted
model with the real LR: their noise-variance curves and their radial power spectra.

:meth:`FittedDegradation.simulate` then makes as many synthetic LR scans of HR patches as training
needs (the ``fitted`` and ``real+fitted`` strategies), with the parameters jittered within their
uncertainty. Apply it to HR patches as acquired (before any rotation or flip): the probe's
orientation belongs to the microscope, not to the specimen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import scipy.fft
import torch

__all__ = ["Estimate", "GoodnessOfFit", "FittedDegradation", "fit_degradation", "DegradationFitError"]

#: LR pixels around the field left out of the residuals (the FFT blur wraps around at the border)
_MIN_MARGIN = 3
#: intensity bins of the noise-variance curve, and the fewest pixels a bin needs to count
_NOISE_BINS = 16
_MIN_BIN_PIXELS = 200
#: blur sigmas (LR px) the fit may reach
_SIGMA_RANGE = (0.05, 3.0)


class DegradationFitError(ValueError):
    """The pair cannot support a fit (too small, constant, or the model does not explain it)."""


@dataclass(frozen=True)
class Estimate:
    """A fitted value and its standard error (jackknife over blocks of the data)."""

    value: float
    uncertainty: float

    def __str__(self) -> str:
        digits = max(2, 2 - int(math.floor(math.log10(self.uncertainty)))) if self.uncertainty > 0 else 3
        return f"{self.value:.{min(digits, 6)}f} +/- {self.uncertainty:.{min(digits, 6)}f}"


@dataclass(frozen=True)
class GoodnessOfFit:
    """How close an LR simulated through the fitted model is to the real LR.

    Attributes
    ----------
    r2 : float
        Share of the LR's variance the noise-free model (blur, integration, tone) explains.
    noise_levels : tuple of float
        Centres (mean model intensity, 0..1) of the intensity bins of the noise curve.
    noise_var_real, noise_var_simulated : tuple of float
        Residual variance (0..1 scale) of the real LR and of the simulated LR in each bin.
    noise_max_relative_error : float
        Largest ``|simulated / real - 1|`` over the bins.
    spectrum_bands : tuple of float
        Centres of the radial frequency bands (cycles per LR pixel, up to 0.5).
    spectrum_real, spectrum_simulated : tuple of float
        Mean power of the real and the simulated LR in each band.
    spectrum_max_log10_error : float
        Largest ``|log10(simulated / real)|`` over the bands.
    """

    r2: float
    noise_levels: tuple[float, ...]
    noise_var_real: tuple[float, ...]
    noise_var_simulated: tuple[float, ...]
    noise_max_relative_error: float
    spectrum_bands: tuple[float, ...]
    spectrum_real: tuple[float, ...]
    spectrum_simulated: tuple[float, ...]
    spectrum_max_log10_error: float


@dataclass(frozen=True)
class FittedDegradation:
    """The forward model HR -> LR fitted to one pair; :meth:`simulate` applies it to HR patches.

    Blur widths are in LR pixels; intensities on the 0..1 scale of each image's data range.
    """

    scale: int
    probe_sigma_major: Estimate
    probe_sigma_minor: Estimate
    probe_angle: Estimate  # radians from the x axis, 0..pi
    gain: Estimate
    offset: Estimate
    gamma: Estimate
    dose: Estimate  # electrons per pixel at full signal
    inverted: bool
    read_noise: Estimate
    line_offset: Estimate
    hr_noise_sigma: float
    quantized: bool
    blocks: int
    goodness: GoodnessOfFit | None = field(default=None, compare=False)

    def summary(self) -> str:
        """Return the fitted parameters and the goodness of fit, one per line."""
        lines = [
            f"fitted degradation (x{self.scale}; +/- jackknife standard errors over {self.blocks} blocks):",
            f"  probe blur: sigma {self.probe_sigma_major} x {self.probe_sigma_minor} LR px, "
            f"major axis at {math.degrees(self.probe_angle.value):.0f} +/- "
            f"{math.degrees(self.probe_angle.uncertainty):.0f} deg",
            f"  tone: gain {self.gain}, offset {self.offset}, gamma {self.gamma}",
            f"  noise: {'inverted ' if self.inverted else ''}Poisson at {self.dose} electrons, "
            f"read noise {self.read_noise} (0..1), scan-line offset {self.line_offset}",
            f"  HR noise sigma {self.hr_noise_sigma:.4f} (removed from the LR residuals)",
        ]
        g = self.goodness
        if g is not None:
            lines.append(
                f"  fit: R^2 {g.r2:.3f}; simulated vs real LR: noise variance within "
                f"{100 * g.noise_max_relative_error:.0f} % per intensity bin, power spectrum within "
                f"{g.spectrum_max_log10_error:.3f} log10 per band"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description (parameters, uncertainties, goodness of fit)."""
        return asdict(self)

    def parameters(self, n: int, generator: torch.Generator, *, jitter: bool = True) -> dict[str, torch.Tensor]:
        """Return ``n`` draws of the parameters of :func:`~.acquisition.acquire` around the fitted values.

        With ``jitter`` each parameter is drawn from a normal distribution of its standard error
        (clamped to physical values), so that training sees the uncertainty of the fit.
        """

        def draw(estimate: Estimate, low: float, high: float = math.inf) -> torch.Tensor:
            value = torch.full((n,), estimate.value, dtype=torch.float32)
            if jitter and estimate.uncertainty > 0:
                value = value + torch.randn(n, generator=generator) * estimate.uncertainty
            return value.clamp(low, high)

        major = draw(self.probe_sigma_major, 0.0)
        minor = torch.minimum(draw(self.probe_sigma_minor, 0.0), major)
        return {
            "probe_sigma": major,
            "probe_aspect": torch.where(major > 0, minor / major.clamp_min(1e-6), torch.ones_like(major)),
            "probe_angle": draw(self.probe_angle, -math.inf),
            "fill_x": torch.ones(n),
            "fill_y": torch.ones(n),
            "gain": draw(self.gain, 0.05),
            "offset": draw(self.offset, -1.0, 1.0),
            "gamma": draw(self.gamma, 0.2, 5.0),
            "dose": draw(self.dose, 0.5),
            "inverted": torch.full((n,), float(self.inverted)),
            "line_offset": draw(self.line_offset, 0.0),
            "line_gain": torch.zeros(n),
            "read_noise": draw(self.read_noise, 0.0),
        }

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        """Return the noise-free LR (N, 1, H, W) of HR (N, 1, s*H, s*W): blur, integration, tone; differentiable.

        The degradation-consistency term ``l(D(f(y)), y)`` compares this with LR patches that have
        no HR (``TrainingConfig.lambda_consistency``).
        """
        from napari_emsr.training.acquisition import detector_transfer, pixel_integrate, probe_blur

        s = self.scale
        major, minor = self.probe_sigma_major.value * s, self.probe_sigma_minor.value * s
        x = probe_blur(hr, major, min(minor, major), self.probe_angle.value)
        x = pixel_integrate(x, s, 1.0, 1.0)
        return detector_transfer(x.clamp_min(1e-6), self.gain.value, self.offset.value, self.gamma.value)

    def simulate(self, hr: torch.Tensor, generator: torch.Generator, *, jitter: bool = True) -> torch.Tensor:
        """Return LR scans (N, 1, H, W) of HR patches (N, 1, s*H, s*W) on the 0..1 scale, as acquired."""
        from napari_emsr.training.acquisition import acquire

        params = self.parameters(hr.shape[0], generator, jitter=jitter)
        if self.quantized:
            return acquire(hr, self.scale, params, generator)
        # a float LR was not quantised: run the same chain without the last step
        return _acquire_unquantized(hr, self.scale, params, generator)


def _acquire_unquantized(hr, scale, params, generator) -> torch.Tensor:
    from napari_emsr.training import acquisition as a

    sigma = params["probe_sigma"] * scale
    x = a.probe_blur(hr, sigma, sigma * params["probe_aspect"], params["probe_angle"])
    x = a.pixel_integrate(x, scale, params["fill_x"], params["fill_y"])
    x = a.detector_transfer(x, params["gain"], params["offset"], params["gamma"])
    x = a.shot_noise(x, params["dose"], generator, params["inverted"])
    x = a.scan_line_noise(x, params["line_offset"], params["line_gain"], generator)
    return a.read_noise(x, params["read_noise"], generator)


# ----------------------------------------------------------------------------------------------
# the fit


@dataclass
class _Data:
    """The pair as the fit uses it: normalised slices, their HR spectra, block labels."""

    lr: np.ndarray  # (n, h, w) float64, 0..1
    hr: np.ndarray  # (n, s*h, s*w) float64, 0..1
    hr_fft: np.ndarray  # rfft2 of hr
    scale: int
    block_of: np.ndarray  # (n, h, w) int: the jackknife block of every LR pixel
    blocks: int
    margin: int
    quantized: bool
    hr_noise_sigma: float
    freqs: tuple[np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        hh, ww = self.hr.shape[-2:]
        fy = np.fft.fftfreq(hh)[:, None]
        fx = np.fft.rfftfreq(ww)[None, :]
        self.freqs = (fy, fx)


def _normalise(stack: np.ndarray, name: str, bounds: tuple[float, float] | None) -> tuple[np.ndarray, bool]:
    from napari_emsr.metrics.data_range import dtype_data_range

    data = np.asarray(stack)
    known = dtype_data_range(data.dtype)
    values = data.astype(np.float64)
    if not np.isfinite(values).all():
        raise DegradationFitError(f"the {name} contains NaN or infinite values; replace them first")
    if bounds is not None:
        low, span = float(bounds[0]), float(bounds[1]) - float(bounds[0])
    elif known is not None:
        low, span = (float(np.iinfo(data.dtype).min) if data.dtype.kind in "iu" else 0.0), known
    else:
        low, high = float(values.min()), float(values.max())
        span = high - low
    if not span > 0 or float(values.std()) == 0.0:
        raise DegradationFitError(f"the {name} is constant: it cannot show a degradation")
    quantized = known is not None and data.dtype.itemsize == 1
    return (values - low) / span, quantized


def _blur_area(data: _Data, sigma_major: float, sigma_minor: float, angle: float) -> np.ndarray:
    """HR through the elliptical Gaussian (sigmas in LR px) and area integration: (n, h, w)."""
    return _through_model(data.hr_fft, data.hr.shape[-2:], data.scale, data.freqs, sigma_major, sigma_minor, angle)


def _through_model(spectrum, shape, s: int, freqs, sigma_major: float, sigma_minor: float, angle: float):
    """Planes given by their ``rfft2`` through the elliptical Gaussian and area integration."""
    fy, fx = freqs
    c, si = math.cos(angle), math.sin(angle)
    u = c * fx + si * fy
    v = -si * fx + c * fy
    a, b = sigma_major * s, sigma_minor * s
    transfer = np.exp(-2.0 * math.pi**2 * (a * a * u * u + b * b * v * v))
    blurred = scipy.fft.irfft2(spectrum * transfer.astype(np.float32), s=tuple(shape), workers=-1)
    n, hh, ww = blurred.shape
    return blurred.reshape(n, hh // s, s, ww // s, s).mean(axis=(2, 4))


def _tone_fit(b: np.ndarray, lr: np.ndarray, gamma: float) -> tuple[float, float, float]:
    """Gain, offset (least squares) and the sum of squared residuals of ``lr ~ offset + gain * b**gamma``."""
    x = np.clip(b, 0.0, None) ** gamma
    xm, ym = x.mean(), lr.mean()
    dx = x - xm
    var = float(np.dot(dx, dx))
    gain = float(np.dot(dx, lr - ym)) / var if var > 0 else 0.0
    offset = float(ym - gain * xm)
    r = lr - offset - gain * x
    return gain, offset, float(np.dot(r, r))


def _unpack(p: Sequence[float] | np.ndarray) -> tuple[float, float, float, float]:
    low, high = _SIGMA_RANGE
    s1 = float(np.clip(math.exp(p[0]), low, high))
    s2 = float(np.clip(math.exp(p[1]), low, high))
    return s1, s2, float(p[2]), float(np.clip(math.exp(p[3]), 0.2, 5.0))


def _canonical(s1: float, s2: float, angle: float) -> tuple[float, float, float]:
    """Sigma along the major axis first, angle of that axis in [0, pi)."""
    if s2 > s1:
        s1, s2, angle = s2, s1, angle + math.pi / 2
    return s1, s2, angle % math.pi


def _fit_blur_tone(
    data: _Data, mask: np.ndarray, start: Sequence[float] | np.ndarray | None, max_evals: int
) -> np.ndarray:
    from scipy.optimize import minimize

    lr = data.lr[mask]

    def objective(p: np.ndarray) -> float:
        s1, s2, angle, gamma = _unpack(p)
        b = _blur_area(data, s1, s2, angle)[mask]
        return _tone_fit(b, lr, gamma)[2]

    if start is None:  # an isotropic fit, then the orientation on a coarse grid, then all four together
        iso = minimize(
            lambda q: objective(np.array([q[0], q[0], 0.0, q[1]])),
            np.array([math.log(0.5), 0.0]), method="Nelder-Mead",
            options={"maxfev": max_evals // 4, "xatol": 1e-3, "fatol": 1e-10},
        )  # fmt: skip
        log_s, log_g = iso.x
        angles = np.arange(8) * math.pi / 8
        trials = [np.array([log_s + 0.25, log_s - 0.25, t, log_g]) for t in angles]
        x = min(trials, key=objective)
    else:
        x = np.asarray(start, dtype=float)
    res = minimize(objective, x, method="Nelder-Mead", options={"maxfev": max_evals, "xatol": 1e-4, "fatol": 1e-12})
    return res.x


def _noise_gain(data: _Data, s1: float, s2: float, angle: float) -> float:
    """Variance a unit white noise on the HR grid keeps through the fitted blur and area integration."""
    rng = np.random.default_rng(12345)
    noise = rng.standard_normal((2, *data.hr.shape[-2:]))
    out = _through_model(scipy.fft.rfft2(noise), data.hr.shape[-2:], data.scale, data.freqs, s1, s2, angle)
    m = data.margin
    return float(out[:, m:-m, m:-m].var())


@dataclass(frozen=True)
class _Noise:
    dose: float
    read_var: float
    inverted: bool
    line_var: float
    levels: np.ndarray
    var_real: np.ndarray
    counts: np.ndarray


def _bins(mu: np.ndarray) -> np.ndarray:
    edges = np.quantile(mu, np.linspace(0, 1, _NOISE_BINS + 1))
    return np.unique(edges)


def _binned_var(mu: np.ndarray, r: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(idx, minlength=len(edges) - 1).astype(float)
    sums = np.bincount(idx, weights=mu, minlength=len(edges) - 1)
    rs = np.bincount(idx, weights=r, minlength=len(edges) - 1)
    rss = np.bincount(idx, weights=r * r, minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        levels = sums / counts
        var = rss / counts - (rs / counts) ** 2
    keep = counts >= _MIN_BIN_PIXELS
    return levels[keep], var[keep], counts[keep]


def _fit_noise(
    data: _Data, mask: np.ndarray, model: np.ndarray, tone: tuple[float, float, float], kappa: float
) -> _Noise:
    """Poisson-Gaussian noise and the scan-line offset from the residuals of the noise-free model."""
    gain, _, gamma = tone
    resid = data.lr - model
    # per-scan-line offsets: the variance of the row means beyond what pixel noise gives them
    m = data.margin
    rows = resid[mask.any(axis=(1, 2))][:, m:-m, m:-m]
    row_means = rows.mean(axis=2)
    inner = rows - row_means[..., None]
    line_var = max(float(row_means.var() - inner.var() / rows.shape[2]), 0.0)
    mu, r = model[mask], resid[mask]
    levels, var, counts = _binned_var(mu, r, _bins(mu))
    if len(levels) < 3:
        raise DegradationFitError("the pair has too few pixels per intensity level to fit a noise curve")
    # what the HR's own noise adds to the residuals, through the blur, the integration and the tone curve
    b_levels = np.clip((np.clip(levels, 1e-6, None) - tone[1]) / max(gain, 1e-6), 1e-6, None) ** (1.0 / gamma)
    slope = gain * gamma * b_levels ** (gamma - 1.0)
    hr_part = slope**2 * data.hr_noise_sigma**2 * kappa
    quant = 1.0 / (12 * 255.0**2) if data.quantized else 0.0
    target = var - hr_part - quant - line_var
    weights = counts / (2.0 * np.maximum(var, 1e-12) ** 2)
    best = None
    for inverted in (False, True):
        signal = 1.0 - levels if inverted else levels
        design = np.stack([np.clip(signal, 0.0, None), np.ones_like(signal)], axis=1)
        w = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(design * w[:, None], target * w, rcond=None)
        coef = np.maximum(coef, 0.0)
        sse = float(np.sum(weights * (design @ coef - target) ** 2))
        if best is None or sse < best[0]:
            best = (sse, inverted, coef)
    assert best is not None
    _, inverted, (a, read_var) = best
    dose = 1.0 / a if a > 1e-9 else 1e9
    return _Noise(min(dose, 1e9), float(read_var), bool(inverted), line_var, levels, var, counts)


@dataclass(frozen=True)
class _Fit:
    params: np.ndarray  # (log s1, log s2, angle, log gamma)
    sigma_major: float
    sigma_minor: float
    angle: float
    gain: float
    offset: float
    gamma: float
    noise: _Noise
    r2: float


def _fit_once(data: _Data, mask: np.ndarray, start: Sequence[float] | np.ndarray | None, max_evals: int) -> _Fit:
    p = _fit_blur_tone(data, mask, start, max_evals)
    s1, s2, angle, gamma = _unpack(p)
    b_full = _blur_area(data, s1, s2, angle)
    gain, offset, sse = _tone_fit(b_full[mask], data.lr[mask], gamma)
    model = offset + gain * np.clip(b_full, 0.0, None) ** gamma
    kappa = _noise_gain(data, s1, s2, angle)
    noise = _fit_noise(data, mask, model, (gain, offset, gamma), kappa)
    total = float(((data.lr[mask] - data.lr[mask].mean()) ** 2).sum())
    major, minor, axis = _canonical(s1, s2, angle)
    return _Fit(p, major, minor, axis, gain, offset, gamma, noise, 1.0 - sse / total if total > 0 else 0.0)


def _jackknife(values: np.ndarray, full: float, *, periodic: float | None = None) -> float:
    """Jackknife standard error of leave-one-block-out estimates (angles wrapped with ``periodic``)."""
    k = len(values)
    if k < 2:
        return float("nan")
    if periodic is not None:  # angle differences on the circle of period ``periodic``
        values = full + (values - full + periodic / 2) % periodic - periodic / 2
    mean = values.mean()
    return float(math.sqrt((k - 1) / k * float(((values - mean) ** 2).sum())))


def _prepare(
    lr: np.ndarray, hr: np.ndarray, scale: int, *, max_slices: int, max_side: int, blocks: int, bounds: tuple
) -> _Data:
    lr_arr, hr_arr = np.asarray(lr), np.asarray(hr)
    if lr_arr.ndim == 2:
        lr_arr, hr_arr = lr_arr[None], hr_arr[None]
    if lr_arr.ndim != 3 or hr_arr.ndim != 3:
        raise DegradationFitError(f"give 2D images or 3D stacks, got LR {lr_arr.shape} and HR {hr_arr.shape}")
    if scale < 1 or int(scale) != scale:
        raise DegradationFitError(f"the scale must be a positive integer, got {scale}")
    n, h, w = lr_arr.shape
    if hr_arr.shape != (n, h * scale, w * scale):
        raise DegradationFitError(
            f"the HR ({hr_arr.shape}) must be the registered field of the LR ({lr_arr.shape}) at x{scale}: "
            f"expected {(n, h * scale, w * scale)}"
        )
    picks = np.unique(np.linspace(0, n - 1, min(n, max_slices)).round().astype(int))
    side_h, side_w = min(h, max_side), min(w, max_side)
    y0, x0 = (h - side_h) // 2, (w - side_w) // 2
    lr_c = lr_arr[picks, y0 : y0 + side_h, x0 : x0 + side_w]
    hr_c = hr_arr[picks, y0 * scale : (y0 + side_h) * scale, x0 * scale : (x0 + side_w) * scale]
    lr_n, quantized = _normalise(lr_c, "LR", bounds[0])
    hr_n, _ = _normalise(hr_c, "HR", bounds[1])
    margin = max(_MIN_MARGIN, math.ceil(3 * _SIGMA_RANGE[1]))
    inside = len(picks) * max(side_h - 2 * margin, 0) * max(side_w - 2 * margin, 0)
    needed = 2 * _NOISE_BINS * _MIN_BIN_PIXELS
    if min(side_h, side_w) < 2 * margin + 16 or inside < needed:
        side = 2 * margin + math.ceil(math.sqrt(needed / len(picks)))
        raise DegradationFitError(
            f"the registered field is {len(picks)} x {side_h} x {side_w} LR pixels ({inside} inside its "
            f"{margin}-pixel margin): a fit needs at least {needed}, e.g. {len(picks)} slices of {side} x {side}"
        )
    from napari_emsr.metrics.noise import noise_sigma

    hr_sigma = float(np.median([noise_sigma(s) for s in hr_n]))
    k = len(picks)
    block_of = np.zeros(lr_n.shape, dtype=int)
    if k >= blocks:  # groups of slices
        for i in range(k):
            block_of[i] = i * blocks // k
        used = blocks
    else:  # quarters of the field, and slices
        yy, xx = np.meshgrid(np.arange(side_h) >= side_h // 2, np.arange(side_w) >= side_w // 2, indexing="ij")
        quarter = (yy.astype(int) * 2 + xx.astype(int))[None]
        block_of = (np.arange(k)[:, None, None] * 4 + quarter) % max(blocks, 4)
        used = int(block_of.max()) + 1
    return _Data(
        lr_n,
        hr_n,
        scipy.fft.rfft2(hr_n.astype(np.float32), workers=-1),
        scale,
        block_of,
        used,
        margin,
        quantized,
        hr_sigma,
    )


def fit_degradation(
    lr: np.ndarray,
    hr: np.ndarray,
    scale: int,
    *,
    lr_bounds: tuple[float, float] | None = None,
    hr_bounds: tuple[float, float] | None = None,
    max_slices: int = 8,
    max_side: int = 160,
    blocks: int = 6,
    max_evals: int = 400,
    goodness: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> FittedDegradation:
    """Fit the forward model HR -> LR to a registered pair.

    Parameters
    ----------
    lr : array (z, h, w) or (h, w)
        The LR part of the pair: the LR volume's pixels over the HR field (as acquired).
    hr : array (z, s*h, s*w) or (s*h, s*w)
        The HR field on the grid ``scale`` times finer, registered to ``lr`` (not contrast-matched:
        the fit estimates the tone curve).
    scale : int
        The pixel-size ratio.
    lr_bounds, hr_bounds : (float, float), optional
        The raw intensities that are 0 and 1 on each image's scale, as training normalises them
        (default: the dtype's range, uint8 0..255; for floating-point data the min and max).
    max_slices, max_side : int
        At most this many slices (spread over the stack) and a centred field this many LR pixels
        a side are used (the cost grows with both; the defaults take a few seconds).
    blocks : int
        Jackknife blocks for the uncertainties.
    max_evals : int
        Evaluations of the least-squares objective per Nelder-Mead search.
    goodness : bool
        Also simulate an LR through the fitted model and compare it with the real one.
    seed : int
        Seed of the simulation for the goodness of fit.
    progress : callable, optional
        Called with a short message before each stage.

    Returns
    -------
    FittedDegradation
    """
    say = progress or (lambda message: None)
    data = _prepare(
        lr, hr, scale, max_slices=max_slices, max_side=max_side, blocks=blocks, bounds=(lr_bounds, hr_bounds)
    )
    m = data.margin
    interior = np.zeros(data.lr.shape, dtype=bool)
    interior[:, m:-m, m:-m] = True
    say("fitting the blur and the tone curve")
    full = _fit_once(data, interior, None, max_evals)
    say(f"jackknife over {data.blocks} blocks")
    parts = [_fit_once(data, interior & (data.block_of != j), full.params, max_evals // 4) for j in range(data.blocks)]

    def est(get: Callable[[_Fit], float], *, periodic: float | None = None) -> Estimate:
        values = np.array([get(p) for p in parts], dtype=float)
        return Estimate(float(get(full)), _jackknife(values, float(get(full)), periodic=periodic))

    fitted = FittedDegradation(
        scale=scale,
        probe_sigma_major=est(lambda f: f.sigma_major),
        probe_sigma_minor=est(lambda f: f.sigma_minor),
        probe_angle=est(lambda f: f.angle, periodic=math.pi),
        gain=est(lambda f: f.gain),
        offset=est(lambda f: f.offset),
        gamma=est(lambda f: f.gamma),
        dose=est(lambda f: f.noise.dose),
        inverted=full.noise.inverted,
        read_noise=est(lambda f: math.sqrt(f.noise.read_var)),
        line_offset=est(lambda f: math.sqrt(f.noise.line_var)),
        hr_noise_sigma=data.hr_noise_sigma,
        quantized=data.quantized,
        blocks=data.blocks,
    )
    if not goodness:
        return fitted
    say("simulating an LR through the fitted model")
    return _with_goodness(fitted, data, full, interior, seed)


def _radial_power(images: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    crop = images[:, margin:-margin, margin:-margin]
    crop = crop - crop.mean(axis=(1, 2), keepdims=True)
    h, w = crop.shape[1:]
    window = np.outer(np.hanning(h), np.hanning(w))
    power = (np.abs(np.fft.fft2(crop * window)) ** 2).mean(axis=0)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    edges = np.geomspace(0.02, 0.5, 9)
    centres, values = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (radius >= lo) & (radius < hi)
        if sel.any():
            centres.append(math.sqrt(lo * hi))
            values.append(float(power[sel].mean()))
    return np.array(centres), np.array(values)


def _with_goodness(fitted: FittedDegradation, data: _Data, full: _Fit, interior: np.ndarray, seed: int):
    from dataclasses import replace

    generator = torch.Generator().manual_seed(seed)
    hr_t = torch.from_numpy(data.hr).float()[:, None]
    simulated = fitted.simulate(hr_t, generator, jitter=False)[:, 0].double().numpy()
    b = _blur_area(data, full.sigma_major, full.sigma_minor, full.angle)
    model = full.offset + full.gain * np.clip(b, 0.0, None) ** full.gamma
    edges = _bins(model[interior])
    levels, var_real, _ = _binned_var(model[interior], (data.lr - model)[interior], edges)
    levels_s, var_sim, _ = _binned_var(model[interior], (simulated - model)[interior], edges)
    common = np.intersect1d(np.round(levels, 9), np.round(levels_s, 9))
    keep_r = np.isin(np.round(levels, 9), common)
    keep_s = np.isin(np.round(levels_s, 9), common)
    levels, var_real, var_sim = levels[keep_r], var_real[keep_r], var_sim[keep_s]
    rel = np.abs(var_sim / np.maximum(var_real, 1e-12) - 1.0)
    bands, p_real = _radial_power(data.lr, data.margin)
    _, p_sim = _radial_power(simulated, data.margin)
    log_err = np.abs(np.log10(np.maximum(p_sim, 1e-20) / np.maximum(p_real, 1e-20)))
    good = GoodnessOfFit(
        r2=full.r2,
        noise_levels=tuple(float(v) for v in levels),
        noise_var_real=tuple(float(v) for v in var_real),
        noise_var_simulated=tuple(float(v) for v in var_sim),
        noise_max_relative_error=float(rel.max()) if rel.size else float("nan"),
        spectrum_bands=tuple(float(v) for v in bands),
        spectrum_real=tuple(float(v) for v in p_real),
        spectrum_simulated=tuple(float(v) for v in p_sim),
        spectrum_max_log10_error=float(log_err.max()) if log_err.size else float("nan"),
    )
    return replace(fitted, goodness=good)
