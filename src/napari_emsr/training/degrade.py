"""Degradations that turn HR EM images into LR training inputs (paper section III-B).

All functions work on float tensors normalised so that the data's full range is 0..1; noise levels
are given, as in the paper, on the 0..255 scale of 8-bit EM and converted here.

- ``synthetic-i``: bicubic down-sampling only;
- ``synthetic-ii``: random isotropic Gaussian blur (sigma in [0, 3] HR pixels), random Gaussian noise
  (sigma in [20, 40]), bicubic down-sampling, random Gaussian noise again (sigma in [5, 15]);
- :func:`em_like` is a *different*, fixed, more realistic degradation (beam blur, signal-dependent
  shot noise, line-correlated scan noise, read noise) used to make test pairs that the synthetic-ii
  training never saw.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from napari_emsr.resample import resize_tensor

__all__ = ["gaussian_blur", "bicubic_down", "synthetic_i", "synthetic_ii", "em_like", "SYNTHETIC_II_RANGES"]

#: the paper's synthetic (II) ranges: blur sigma (HR px), noise before and after down-sampling (0..255)
SYNTHETIC_II_RANGES = {"blur": (0.0, 3.0), "noise_hr": (20.0, 40.0), "noise_lr": (5.0, 15.0)}


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Isotropic Gaussian blur of (N, 1, H, W), one sigma per image (0 = unchanged), reflected borders."""
    n = x.shape[0]
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(n)
    radius = max(1, math.ceil(3 * float(sigma.max())))
    if float(sigma.max()) <= 0:
        return x
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    safe = sigma.clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (t[None, :] / safe) ** 2)
    kernel = torch.where(sigma[:, None] > 0, kernel, (t[None, :] == 0).to(x.dtype))  # sigma 0: identity
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (N, K)
    pad_mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    xp = F.pad(x.transpose(0, 1), (radius, radius, radius, radius), mode=pad_mode)  # (1, N, H', W')
    xp = F.conv2d(xp, kernel[:, None, None, :], groups=n)
    xp = F.conv2d(xp, kernel[:, None, :, None], groups=n)
    return xp.transpose(0, 1)


def bicubic_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic down-sampling of (N, C, H, W) by an integer factor (H, W multiples of it)."""
    if scale == 1:
        return x
    h, w = x.shape[-2:]
    return resize_tensor(x, (h // scale, w // scale))


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=generator)


def _noise(shape, sigma255: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * (sigma255 / 255.0).view(-1, 1, 1, 1)


def synthetic_i(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Synthetic (I): bicubic down-sampling of HR (N, 1, sH, sW) to LR (N, 1, H, W)."""
    return bicubic_down(hr, scale)


def synthetic_ii(hr: torch.Tensor, scale: int, generator: torch.Generator, ranges: dict | None = None) -> torch.Tensor:
    """Synthetic (II): random blur, noise, bicubic down-sampling, noise; parameters drawn per image."""
    r = {**SYNTHETIC_II_RANGES, **(ranges or {})}
    n = hr.shape[0]
    x = gaussian_blur(hr, _uniform(n, r["blur"], generator))
    x = x + _noise(x.shape, _uniform(n, r["noise_hr"], generator), generator)
    x = bicubic_down(x, scale)
    return x + _noise(x.shape, _uniform(n, r["noise_lr"], generator), generator)


def em_like(
    hr: torch.Tensor,
    scale: int,
    generator: torch.Generator,
    *,
    blur: float = 1.2,
    photons: float = 60.0,
    line_noise: float = 3.0,
    read_noise: float = 6.0,
) -> torch.Tensor:
    """Return a fixed, EM-like acquisition of HR (N, 1, sH, sW) at 1/scale the resolution.

    Beam blur (Gaussian, ``blur`` HR pixels), down-sampling by area averaging (a detector pixel
    integrates its field), Poisson shot noise with ``photons`` electrons at full brightness,
    line-correlated scan noise (one offset per scan line, sigma ``line_noise`` on 0..255) and
    Gaussian read noise (sigma ``read_noise`` on 0..255). Independent of synthetic (II)'s model.
    """
    x = gaussian_blur(hr, blur)
    x = F.avg_pool2d(x, scale) if scale > 1 else x
    counts = torch.poisson(x.clamp_min(0) * photons, generator=generator)
    x = counts / photons
    n, c, h, w = x.shape
    x = x + torch.randn(n, c, h, 1, generator=generator) * (line_noise / 255.0)
    return x + torch.randn(x.shape, generator=generator) * (read_noise / 255.0)
