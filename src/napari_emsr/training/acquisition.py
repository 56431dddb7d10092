"""A physical model of an EM acquisition at low resolution: the ``synthetic-em`` training strategy.

The LR input is simulated as an *independent, second scan* of the field an HR patch shows, at
``scale`` times the pixel size. Each effect is one small function on float tensors (N, 1, H, W)
normalised so that the detector's full range is 0..1; :func:`synthetic_em` chains them with every
parameter drawn per patch from :data:`SYNTHETIC_EM_RANGES`. docs/training.md says why each effect is
there and where its range comes from.

The chain, in the order the physics applies it:

1. :func:`probe_blur`: the beam (SEM) or the optics and specimen drift (TEM) blur the specimen with an
   elliptical Gaussian of any orientation (astigmatism, drift and charging make it anisotropic);
2. :func:`pixel_integrate`: a detector pixel integrates the signal over its dwell (the beam moves
   along the scan line during a pixel) or over its area (camera), then the field is sampled on the
   coarse LR grid;
3. :func:`detector_transfer`: the detector's brightness, contrast and gamma differ from the HR scan;
4. :func:`shot_noise`: signal-dependent Poisson noise of the electrons counted at a given dose, on
   the image as shown or, for contrast-inverted images (backscatter SEM shown TEM-like, dark =
   many electrons), on its inverse;
5. :func:`scan_line_noise`: per-line offset and gain jitter of a raster scan (line-frequency hum,
   beam-current drift);
6. :func:`read_noise`: amplifier / read-out noise, signal-independent;
7. quantisation to 8 bits (what the detector writes).

:func:`zoom` is the scale augmentation: it resamples HR patches by a random factor *before* the
acquisition, so that the network sees structures at a range of pixel sizes, not only the one of its
training data.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F

from napari_emsr.resample import resize_tensor

__all__ = [
    "SYNTHETIC_EM_RANGES",
    "probe_blur",
    "pixel_integrate",
    "detector_transfer",
    "shot_noise",
    "scan_line_noise",
    "read_noise",
    "quantize",
    "zoom",
    "draw_parameters",
    "acquire",
    "synthetic_em",
]

#: Ranges of every parameter of :func:`synthetic_em`, drawn independently per patch (uniform unless
#: said). Blur widths are in LR pixels (they scale with the factor); noise on the 0..1 scale.
SYNTHETIC_EM_RANGES: dict[str, tuple[float, float]] = {
    # probe: Gaussian sigma of the wider axis (LR px), ratio of the narrow to the wide axis, angle (rad)
    "probe_sigma": (0.15, 0.9),
    "probe_aspect": (0.5, 1.0),
    "probe_angle": (0.0, math.pi),
    # fraction of the LR pixel a detector pixel integrates over, along the scan line (x) and across it (y)
    "fill_x": (0.5, 1.0),
    "fill_y": (0.0, 1.0),
    # detector transfer: out = offset + gain * in ** gamma
    "gain": (0.8, 1.2),
    "offset": (-0.08, 0.08),
    "gamma": (0.8, 1.25),
    # electrons counted per pixel at full signal (log-uniform)
    "dose": (8.0, 400.0),
    # share of patches whose signal is inverted (dark = many electrons): a draw below it inverts
    "inverted": (0.0, 1.0),
    # per-scan-line offset sigma and relative gain sigma
    "line_offset": (0.0, 4.0 / 255),
    "line_gain": (0.0, 0.03),
    # read-out noise sigma
    "read_noise": (0.0, 8.0 / 255),
    # scale augmentation: HR patches are resampled by this factor first (log-uniform;
    # > 1 shows the network coarser HR pixels, < 1 finer ones)
    "zoom": (0.75, 1.6),
}

_LOG_UNIFORM = frozenset({"dose", "zoom"})


def _per_image(value, n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1).expand(n)


def probe_blur(x: torch.Tensor, sigma_major, sigma_minor, angle) -> torch.Tensor:
    """Blur (N, 1, H, W) with an elliptical Gaussian per image (sigmas in pixels of ``x``).

    ``sigma_major`` lies along ``angle`` (radians from the x axis), ``sigma_minor`` across it; a sigma
    of 0 leaves that axis unchanged. The kernel sums to 1 (the mean intensity is kept); borders reflect.
    """
    n = x.shape[0]
    s1 = _per_image(sigma_major, n, x).clamp_min(0)
    s2 = _per_image(sigma_minor, n, x).clamp_min(0)
    theta = _per_image(angle, n, x)
    widest = float(torch.maximum(s1, s2).max())
    if widest <= 1e-3:
        return x
    radius = max(1, math.ceil(3 * widest))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = c * xx + s * yy  # along the major axis
    v = -s * xx + c * yy
    # a sigma of ~0 is a delta on that axis: with the 0.2 px floor the sampled neighbours weigh < 1e-5
    a, b = s1.clamp_min(0.2)[:, None, None], s2.clamp_min(0.2)[:, None, None]
    kernel = torch.exp(-0.5 * ((u / a) ** 2 + (v / b) ** 2))
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    pad_mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    xp = F.pad(x.transpose(0, 1), (radius,) * 4, mode=pad_mode)  # (1, N, H', W')
    return F.conv2d(xp, kernel[:, None], groups=n).transpose(0, 1)


def _box_weights(scale: int, fill: torch.Tensor) -> torch.Tensor:
    """(N, scale) weights over the HR pixels of one LR pixel: a centred box ``fill * scale`` wide.

    Each HR pixel gets the fraction of it the box covers; ``fill`` 0 samples the LR pixel centre
    (for even factors, the mean of the two HR pixels next to it).
    """
    centres = torch.arange(scale, dtype=fill.dtype, device=fill.device) - (scale - 1) / 2
    half = (fill.clamp(0, 1) * scale / 2)[:, None]
    covered = (torch.minimum(centres[None] + 0.5, half) - torch.maximum(centres[None] - 0.5, -half)).clamp_min(0)
    point = (1 - centres[None].abs()).clamp_min(0).expand_as(covered)
    w = torch.where(half > 0.5 / scale, covered, point)
    return w / w.sum(dim=1, keepdim=True)


def pixel_integrate(x: torch.Tensor, scale: int, fill_x, fill_y) -> torch.Tensor:
    """Sample (N, 1, s*H, s*W) on the LR grid (N, 1, H, W), each LR pixel integrating a centred box.

    The box covers ``fill_x`` of the LR pixel along x (the scan line: the beam moves during the
    dwell) and ``fill_y`` across it; 1 and 1 is area averaging (a camera pixel), 0 point sampling.
    """
    if scale == 1:
        return x
    n, _, h, w = x.shape
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {scale}")
    wx = _box_weights(scale, _per_image(fill_x, n, x))
    wy = _box_weights(scale, _per_image(fill_y, n, x))
    x = F.conv2d(x.transpose(0, 1), wx[:, None, None, :], stride=(1, scale), groups=n)
    x = F.conv2d(x, wy[:, None, :, None], stride=(scale, 1), groups=n)
    return x.transpose(0, 1)


def detector_transfer(x: torch.Tensor, gain, offset, gamma) -> torch.Tensor:
    """``offset + gain * x ** gamma`` per image (x clamped to >= 0 first): the detector's tone curve."""
    n = x.shape[0]
    view = (-1, 1, 1, 1)
    g = _per_image(gain, n, x).view(view)
    o = _per_image(offset, n, x).view(view)
    p = _per_image(gamma, n, x).view(view)
    return o + g * x.clamp_min(0) ** p


#: probability that a synthetic-em patch counts its electrons on the inverted signal
INVERTED_PROBABILITY = 0.5


def shot_noise(x: torch.Tensor, dose, generator: torch.Generator, inverted=False) -> torch.Tensor:
    """Poisson noise of ``dose`` electrons per pixel at full signal: variance x / dose.

    ``inverted`` (per image): the signal is ``1 - x`` (contrast-inverted images, where dark pixels
    counted many electrons), so the variance is (1 - x) / dose and grows towards dark pixels.
    """
    n = x.shape[0]
    d = _per_image(dose, n, x).view(-1, 1, 1, 1).clamp_min(1e-3)
    inv = _per_image(inverted, n, x).view(-1, 1, 1, 1) > 0.5
    signal = torch.where(inv, 1 - x, x).clamp_min(0)
    counts = torch.poisson((signal * d).float(), generator=generator).to(x.dtype) / d
    return torch.where(inv, 1 - counts, counts)


def scan_line_noise(x: torch.Tensor, offset_sigma, gain_sigma, generator: torch.Generator) -> torch.Tensor:
    """Raster-scan artefacts: each image row (scan line) gets its own offset and relative gain."""
    n, c, h, _ = x.shape
    view = (-1, 1, 1, 1)
    o = _per_image(offset_sigma, n, x).view(view)
    g = _per_image(gain_sigma, n, x).view(view)
    line_offset = torch.randn((n, c, h, 1), generator=generator).to(x) * o
    line_gain = 1 + torch.randn((n, c, h, 1), generator=generator).to(x) * g
    return x * line_gain + line_offset


def read_noise(x: torch.Tensor, sigma, generator: torch.Generator) -> torch.Tensor:
    """Signal-independent Gaussian read-out noise with standard deviation ``sigma`` (0..1 scale)."""
    s = _per_image(sigma, x.shape[0], x).view(-1, 1, 1, 1)
    return x + torch.randn(x.shape, generator=generator).to(x) * s


def quantize(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Clip to 0..1 and round to ``levels`` steps, as an 8-bit detector writes its image."""
    return torch.round(x.clamp(0, 1) * levels) / levels


def zoom(hr: torch.Tensor, factor: float, size: int) -> torch.Tensor:
    """Scale augmentation: resample the centre of (N, 1, H, W) to ``size`` pixels.

    The ``size`` output pixels cover ``factor * size`` input pixels (factor > 1: coarser pixels,
    antialiased; < 1: finer).
    """
    h, w = hr.shape[-2:]
    span = int(round(size * factor))
    if span > min(h, w):
        raise ValueError(f"a zoom of {factor:.3g} needs {span} px, the patch has {min(h, w)}")
    y0, x0 = (h - span) // 2, (w - span) // 2
    crop = hr[..., y0 : y0 + span, x0 : x0 + span]
    return crop if span == size else resize_tensor(crop, (size, size))


def _draw(low: float, high: float, log: bool, n: int, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator)
    if log:
        return torch.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
    return low + (high - low) * u


def draw_parameters(
    n: int, generator: torch.Generator, ranges: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, torch.Tensor]:
    """One draw per image of every acquisition parameter (see :data:`SYNTHETIC_EM_RANGES`)."""
    r = {**SYNTHETIC_EM_RANGES, **(ranges or {})}
    unknown = sorted(set(r) - set(SYNTHETIC_EM_RANGES))
    if unknown:
        raise ValueError(f"unknown synthetic-em parameter(s) {', '.join(unknown)}")
    params = {name: _draw(*r[name], name in _LOG_UNIFORM, n, generator) for name in SYNTHETIC_EM_RANGES}
    params["inverted"] = (params["inverted"] < INVERTED_PROBABILITY).to(params["inverted"].dtype)
    return params


def acquire(
    hr: torch.Tensor, scale: int, params: Mapping[str, torch.Tensor], generator: torch.Generator
) -> torch.Tensor:
    """Simulate the LR scan (N, 1, H, W) of HR (N, 1, s*H, s*W) with the given per-image parameters."""
    sigma = params["probe_sigma"] * scale  # LR px -> HR px
    x = probe_blur(hr, sigma, sigma * params["probe_aspect"], params["probe_angle"])
    x = pixel_integrate(x, scale, params["fill_x"], params["fill_y"])
    x = detector_transfer(x, params["gain"], params["offset"], params["gamma"])
    x = shot_noise(x, params["dose"], generator, params["inverted"])
    x = scan_line_noise(x, params["line_offset"], params["line_gain"], generator)
    x = read_noise(x, params["read_noise"], generator)
    return quantize(x)


def synthetic_em(
    hr: torch.Tensor,
    scale: int,
    generator: torch.Generator,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    *,
    tone: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a ``synthetic-em`` training pair from HR patches (N, 1, s*H, s*W), fresh parameters per patch.

    Returns ``(lr, target)``: the simulated LR scan (:func:`acquire`) and the HR reference. The
    detector's tone curve (gain, offset, gamma) is applied to *both*: a model used without a
    reference cannot know which contrast the user wants, so a tone change between input and target
    would teach it to guess one (it did: outputs drifted towards the training data's mean contrast).
    With the same curve on both it learns every tone curve and keeps the input's. ``tone=False``
    leaves the tone unchanged (fixed validation crops). Scale augmentation (:func:`zoom`) is applied
    by the patch sampler before this.
    """
    params = draw_parameters(hr.shape[0], generator, ranges)
    if not tone:
        for name, neutral in (("gain", 1.0), ("offset", 0.0), ("gamma", 1.0)):
            params[name] = torch.full_like(params[name], neutral)
    lr = acquire(hr, scale, params, generator)
    target = detector_transfer(hr, params["gain"], params["offset"], params["gamma"]).clamp(0, 1) if tone else hr
    return lr, target
