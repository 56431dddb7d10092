"""Sampling along one axis: how sections sample z, and interpolation back to an isotropic grid.

An anisotropic volume samples z every ``K`` xy pixels (``K = z step / xy pixel size``, any real
number > 1). Each section integrates the specimen over its thickness, a *section profile* along z
(a box of the section's thickness, or a Gaussian of that FWHM), and is imaged with the noise of one
xy pixel. :func:`axial_degrade` simulates exactly that along the rows of xy patches, which are
sampled at the xy pixel size in both directions: blur the rows with the profile, keep rows every
``K`` pixels (from a random phase), restore the noise level a single measurement has, and
interpolate back to every row with the same cubic kernel that :func:`cubic_resample` applies to the
volume's z axis at reconstruction. The network thus learns on inputs made the way the volume's own
xz and yz planes look after cubic interpolation in z.

Row ``j`` of the isotropic output lies at input slice position ``j / K``: output row 0 is slice 0
and the last output row is at or before the last slice (:func:`isotropic_depth`), so nothing is
extrapolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "PROFILES",
    "SectionSampling",
    "axial_degrade",
    "cubic_resample",
    "linear_resample",
    "isotropic_depth",
    "output_positions",
    "profile_kernel",
    "sample_sections",
]

#: section profiles along z: a box of the section's thickness, or a Gaussian whose FWHM is the thickness
PROFILES = ("box", "gaussian")

#: Keys' cubic convolution parameter (a = -0.5: the interpolating cubic of bicubic resampling)
_KEYS_A = -0.5


def isotropic_depth(depth: int, factor: float) -> int:
    """Rows of the isotropic grid for ``depth`` slices every ``factor`` pixels (none past the last slice)."""
    if depth < 1:
        raise ValueError(f"the volume has no slices (depth {depth})")
    return int(math.floor((depth - 1) * factor + 1e-6)) + 1


def output_positions(rows: range | np.ndarray, factor: float) -> np.ndarray:
    """Input slice positions (fractional) of isotropic output rows."""
    return np.asarray(rows, dtype=np.float64) / float(factor)


def _keys(s: torch.Tensor) -> torch.Tensor:
    a, s = _KEYS_A, s.abs()
    near = ((a + 2) * s - (a + 3)) * s * s + 1
    far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return torch.where(s <= 1, near, torch.where(s < 2, far, torch.zeros_like(s)))


def _resample(samples: torch.Tensor, positions: torch.Tensor, cubic: bool) -> torch.Tensor:
    """Interpolate ``samples`` (..., n, W) along dim -2 at ``positions`` (m,) or (N, m) -> (..., m, W)."""
    n = samples.shape[-2]
    positions = positions.to(torch.float64).clamp(0, n - 1)
    base = torch.floor(positions)
    frac = (positions - base).to(samples.dtype)
    base = base.to(torch.long)
    taps = (-1, 0, 1, 2) if cubic else (0, 1)
    out = None
    for t in taps:
        index = (base + t).clamp(0, n - 1)
        weight = _keys(frac - t) if cubic else (1 - frac if t == 0 else frac)
        if positions.ndim == 1:
            term = samples.index_select(-2, index) * weight[:, None]
        else:  # one set of positions per image (N, m): samples (N, C, n, W)
            gathered = torch.gather(samples, -2, index[:, None, :, None].expand(-1, samples.shape[1], -1,
                                                                                 samples.shape[-1]))
            term = gathered * weight[:, None, :, None]
        out = term if out is None else out + term
    assert out is not None
    return out


def cubic_resample(samples: Any, positions: Any) -> Any:
    """Cubic (Keys, a = -0.5) interpolation along axis -2 at fractional ``positions``; edges are clamped.

    ``samples``: a numpy array or tensor (..., n, W); ``positions``: (m,) slice positions in 0..n-1
    (or (N, m) for a batch of images (N, C, n, W)). Returns the same kind of array, (..., m, W).
    At whole-number positions the samples come back unchanged.
    """
    if isinstance(samples, np.ndarray):
        out = _resample(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
                        torch.as_tensor(positions), cubic=True)
        return out.numpy()
    return _resample(samples, torch.as_tensor(positions, device=samples.device), cubic=True)


def linear_resample(samples: Any, positions: Any) -> Any:
    """Linear interpolation along axis -2, like :func:`cubic_resample` (a baseline for comparison)."""
    if isinstance(samples, np.ndarray):
        out = _resample(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
                        torch.as_tensor(positions), cubic=False)
        return out.numpy()
    return _resample(samples, torch.as_tensor(positions, device=samples.device), cubic=False)


def profile_kernel(width: float, profile: str = "box") -> np.ndarray:
    """Return the section profile sampled on the xy pixel grid: weights summing to 1, centred, odd length.

    ``width``: the section thickness in xy pixels (box width, or the Gaussian's FWHM). A box of a
    width that is not a whole number gets partial weights at its two ends.
    """
    if profile not in PROFILES:
        raise ValueError(f"section profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if not width > 0:
        raise ValueError(f"the section thickness must be positive, got {width}")
    if profile == "box":
        half = width / 2
        radius = int(math.ceil(half - 0.5 - 1e-9))
        offsets = np.arange(-radius, radius + 1, dtype=np.float64)
        # the overlap of each pixel [o - 1/2, o + 1/2] with the box [-half, half]
        weights = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0, None)
    else:
        sigma = width / (2 * math.sqrt(2 * math.log(2)))
        radius = max(1, int(math.ceil(3 * sigma)))
        offsets = np.arange(-radius, radius + 1, dtype=np.float64)
        weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum()).astype(np.float32)


@dataclass(frozen=True)
class SectionSampling:
    """How an acquisition samples z, in xy pixels, and the noise of one measurement.

    Attributes
    ----------
    factor : float
        ``K``: xy pixels per z step (z step / xy pixel size), > 1.
    factor_max : float or None
        With a value, ``K`` is drawn per patch in [factor, factor_max] (one model for a range).
    profile : str
        ``"box"`` or ``"gaussian"`` (see :data:`PROFILES`).
    thickness : float
        Section thickness as a multiple of the z step (1: contiguous sections, the usual case).
    noise_sigma : float
        Noise sigma of one xy pixel (network units, 0..1), restored after the profile averaged it away.
    """

    factor: float
    factor_max: float | None = None
    profile: str = "box"
    thickness: float = 1.0
    noise_sigma: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor > 1):
            raise ValueError(f"the z factor must be a number > 1 (z step / xy pixel size), got {self.factor}")
        if self.factor_max is not None and not self.factor_max >= self.factor:
            raise ValueError(f"the largest z factor ({self.factor_max}) is below the smallest ({self.factor})")
        if self.profile not in PROFILES:
            raise ValueError(f"section profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if not 0 < self.thickness <= 4:
            raise ValueError(f"the section thickness must be in (0, 4] z steps, got {self.thickness}")
        if not self.noise_sigma >= 0:
            raise ValueError(f"noise sigma must be >= 0, got {self.noise_sigma}")

    @property
    def largest(self) -> float:
        """The largest z factor drawn."""
        return self.factor if self.factor_max is None else self.factor_max

    @property
    def typical(self) -> float:
        """The z factor validation uses: the geometric mean of the range."""
        return self.factor if self.factor_max is None else math.sqrt(self.factor * self.factor_max)

    def margin(self) -> int:
        """Pixels of context a patch needs on each side along the sampled axis."""
        width = self.thickness * self.largest
        radius = len(profile_kernel(width, self.profile)) // 2
        return int(radius + 2 * math.ceil(self.largest) + 2)

    def draw_factor(self, generator: torch.Generator) -> float:
        """Return a z factor: the one given, or one drawn log-uniformly in the range."""
        if self.factor_max is None:
            return self.factor
        u = float(torch.rand(1, generator=generator))
        return float(math.exp(math.log(self.factor) + u * (math.log(self.factor_max) - math.log(self.factor))))

    def simulate(self, x: torch.Tensor, generator: torch.Generator, factor: float | None = None) -> torch.Tensor:
        """Degrade the rows of ``x`` (N, 1, H, W) as sections sample z, and interpolate back (N, 1, H, W)."""
        k = self.draw_factor(generator) if factor is None else float(factor)
        phase = float(torch.rand(1, generator=generator)) * k
        return axial_degrade(x, k, profile=self.profile, thickness=self.thickness, phase=phase,
                             noise_sigma=self.noise_sigma, generator=generator)

    def to_dict(self) -> dict[str, Any]:
        """Return the sampling as a plain (JSON-ready) dict."""
        return {"factor": self.factor, "factor_max": self.factor_max, "profile": self.profile,
                "thickness": self.thickness, "noise_sigma": self.noise_sigma}


def axial_degrade(
    x: torch.Tensor,
    factor: float,
    *,
    profile: str = "box",
    thickness: float = 1.0,
    phase: float = 0.0,
    noise_sigma: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample the rows of ``x`` (N, C, H, W) as sections sample z, then interpolate back to every row.

    Rows are kept every ``factor`` pixels through a section profile and interpolated back (cubic):
    an xz plane of the anisotropic acquisition, as reconstruction sees it after cubic
    interpolation in z.

    ``phase``: the row (fractional, in [0, factor)) of the first section. ``noise_sigma``: the noise
    of one xy pixel in ``x`` (same units); noise is added so that each section carries that much
    noise again after the profile averaged ``x``'s own noise down.
    """
    kernel = profile_kernel(thickness * factor, profile)
    r = len(kernel) // 2
    weights = torch.from_numpy(kernel).to(x)
    padded = torch.nn.functional.pad(x.flatten(0, 1)[:, None], (0, 0, r, r), mode="replicate")
    blurred = torch.nn.functional.conv2d(padded, weights.view(1, 1, -1, 1)).view_as(x)
    height = x.shape[-2]
    count = int(math.floor((height - 1 - phase) / factor)) + 1
    if count < 2:
        raise ValueError(f"{height} rows hold fewer than two sections at a z factor of {factor}")
    rows = phase + factor * torch.arange(count, dtype=torch.float64)
    sections = linear_resample(blurred, rows)  # the profile band-limits: linear sampling is enough
    if noise_sigma > 0:
        left = max(0.0, 1.0 - float((kernel.astype(np.float64) ** 2).sum()))
        sections = sections + math.sqrt(left) * noise_sigma * torch.randn(
            sections.shape, generator=generator, dtype=sections.dtype)
    back = (torch.arange(height, dtype=torch.float64) - phase) / factor
    return cubic_resample(sections, back)


def sample_sections(
    volume: np.ndarray,
    factor: float,
    *,
    profile: str = "box",
    thickness: float = 1.0,
    noise_sigma: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Simulate an anisotropic acquisition of an isotropic ``volume`` (z, y, x): sections every ``factor`` slices.

    Each section is the volume averaged through the section profile around z = k * factor, with
    noise added so that it carries the noise of one slice again (``noise_sigma``: of one slice, in
    the volume's units; None measures it on the middle slice, 0 adds none). Returns float32
    (sections, y, x); slice k lies at z = k * factor of the input, like the rows of the isotropic grid.
    """
    from napari_emsr.metrics.noise import noise_sigma as measure

    data = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
    sigma = measure(np.asarray(volume[volume.shape[0] // 2], dtype=np.float64)) if noise_sigma is None else noise_sigma
    generator = torch.Generator().manual_seed(seed)
    planes = data.permute(2, 0, 1)[:, None]  # (x, 1, z, y): z along the rows
    kernel = profile_kernel(thickness * factor, profile)
    r = len(kernel) // 2
    weights = torch.from_numpy(kernel)
    blurred = torch.nn.functional.conv2d(
        torch.nn.functional.pad(planes, (0, 0, r, r), mode="replicate"), weights.view(1, 1, -1, 1))
    count = int(math.floor((volume.shape[0] - 1) / factor + 1e-9)) + 1
    sections = linear_resample(blurred, factor * torch.arange(count, dtype=torch.float64))
    out = sections[:, 0].permute(1, 2, 0).contiguous()  # (sections, y, x)
    if sigma > 0:
        left = max(0.0, 1.0 - float((kernel.astype(np.float64) ** 2).sum()))
        out = out + math.sqrt(left) * sigma * torch.randn(out.shape, generator=generator)
    return out.numpy()
