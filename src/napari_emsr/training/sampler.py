"""Random training patches from LR/HR volumes, with the paper's augmentation (section III-B-1).

Each sample is an LR patch ``y`` (1, p, p) and its HR reference ``x`` (1, s*p, s*p), normalised to
the model's 0..1 range. For real (and denoised) pairs both come from the aligned volumes; for the
synthetic strategies the LR patch is made from the HR patch on the fly, with fresh random
degradation parameters each time. Then both get the same random rot90 and flips, and ``y`` gets
Gaussian noise with sigma drawn from ``input_noise`` (0..255 scale).

All randomness comes from one ``torch.Generator``, whose state is saved with training checkpoints
so that a resumed run draws exactly the patches an uninterrupted run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from napari_emsr.config import FITTED_STRATEGIES, STRATEGIES
from napari_emsr.training.acquisition import SYNTHETIC_EM_RANGES, synthetic_em, zoom
from napari_emsr.training.degrade import synthetic_i, synthetic_ii

__all__ = ["Volume3D", "PatchSampler", "STRATEGIES", "noisier"]

_MARGIN = 4  # LR pixels of context degraded around a synthetic patch, then cropped away


@dataclass
class Volume3D:
    """One training volume (z, y, x) with the z slices that may be sampled, and its intensity bounds."""

    data: Any  # anything indexable like a numpy array (numpy, zarr, dask)
    slices: Sequence[int]
    low: float = 0.0
    high: float = 255.0

    def __post_init__(self) -> None:
        if len(self.data.shape) != 3:
            raise ValueError(f"training volumes must be 3D (z, y, x), got shape {tuple(self.data.shape)}")
        if len(self.slices) == 0:
            raise ValueError("no slices left to train on (all are held out for validation?)")

    def crop(self, z: int, y: int, x: int, size: int) -> torch.Tensor:
        """Return the normalised (size, size) patch of slice ``z`` at (y, x) as a float32 tensor."""
        patch = np.asarray(self.data[z, y : y + size, x : x + size], dtype=np.float32)
        return torch.from_numpy((patch - self.low) / (self.high - self.low))


@dataclass
class PatchSampler:
    """Draws batches of (y, x) training patches.

    Parameters
    ----------
    hr : list of Volume3D
        Reference volumes (HR, noisy).
    lr : list of Volume3D or None
        LR volumes aligned with ``hr`` (LR pixel (z, i, j) covers HR pixels (z, s*i.., s*j..)); needed
        for ``real`` and ``denoised``, ignored by the synthetic strategies.
    scale, patch : int
        Up-sampling factor and LR patch size (HR patches are ``scale * patch``).
    strategy : str
        One of :data:`STRATEGIES`.
    degradation : FittedDegradation or SectionSampling, optional
        For ``axial`` (scale 1): the :class:`~napari_emsr.isotropic.sampling.SectionSampling` that
        makes inputs from HR patches, sampled along their rows as sections sample z. The HR patch is
        rotated (k * 90 degrees) before it is sampled, and only flips and half turns follow, so the
        sampled axis is always the rows (z in an xz / yz plane) and both in-plane axes are learnt.
        For ``fitted`` and ``real+fitted``: the degradation fitted to the pair, through which LR
        inputs are simulated from HR patches as acquired (before rotation and flips: the probe's
        orientation belongs to the microscope).
    fitted_share : float
        With ``real+fitted``, the share of patches whose input is simulated.
    zoom : (float, float), optional
        With ``synthetic-em``: the range of the scale augmentation's zoom factor (log-uniform); None
        takes ``SYNTHETIC_EM_RANGES["zoom"]``.
    input_noise : (float, float)
        Range of the augmentation noise sigma added to ``y`` (0..255 scale; paper: 0..5).
    """

    hr: list[Volume3D]
    lr: list[Volume3D] | None
    scale: int
    patch: int
    strategy: str
    input_noise: tuple[float, float] = (0.0, 5.0)
    seed: int = 0
    #: how volumes are drawn: "pixels" (in proportion to their trainable pixels) or "volumes" (equally)
    balance: str = "pixels"
    degradation: Any = None
    fitted_share: float = 0.5
    zoom: tuple[float, float] | None = None
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        self.synthetic = self.strategy.startswith("synthetic")
        self.fitted = self.strategy in FITTED_STRATEGIES
        self.axial = self.strategy == "axial"
        if self.axial and (self.degradation is None or self.scale != 1):
            raise ValueError("strategy 'axial' needs a scale-1 network and the section sampling to simulate")
        if self.fitted and self.degradation is None:
            raise ValueError(f"strategy {self.strategy!r} needs the degradation fitted to the pair")
        if (
            self.strategy not in ("fitted",)
            and not self.synthetic
            and not self.axial
            and (self.lr is None or len(self.lr) != len(self.hr))
        ):
            raise ValueError(f"strategy {self.strategy!r} needs one LR volume per HR volume")
        margin = self.degradation.margin() if self.axial else _MARGIN
        need = (self.patch + (2 * margin if self.synthetic or self.fitted or self.axial else 0)) * self.scale
        for vol in self.hr:
            if min(vol.data.shape[1:]) < need:
                raise ValueError(
                    f"HR slices of {vol.data.shape[1:]} pixels are smaller than a training patch ({need} px); "
                    f"use a smaller patch size"
                )
        self.generator = torch.Generator().manual_seed(self.seed)
        if self.balance not in ("pixels", "volumes"):
            raise ValueError(f"balance must be 'pixels' or 'volumes', got {self.balance!r}")
        # sample volumes in proportion to their number of trainable pixels, or equally
        sizes = torch.tensor(
            [len(v.slices) * v.data.shape[1] * v.data.shape[2] if self.balance == "pixels" else 1.0 for v in self.hr],
            dtype=torch.float64,
        )
        self._weights = sizes / sizes.sum()

    @property
    def zoom_range(self) -> tuple[float, float]:
        """The zoom range synthetic-em draws from: ``zoom``, or the documented default."""
        return SYNTHETIC_EM_RANGES["zoom"] if self.zoom is None else self.zoom

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def _one(self) -> tuple[torch.Tensor, torch.Tensor]:
        v = int(torch.multinomial(self._weights, 1, generator=self.generator))
        hr_vol, s, p = self.hr[v], self.scale, self.patch
        z = hr_vol.slices[self._randint(len(hr_vol.slices))]
        if self.strategy == "synthetic-em":
            return self._one_em(hr_vol, z)
        if self.axial:
            return self._one_axial(hr_vol, z)
        if self.strategy == "fitted" or (
            self.strategy == "real+fitted" and float(torch.rand(1, generator=self.generator)) < self.fitted_share
        ):
            # through the fitted degradation, as the pair's own microscope would scan the patch
            return self._one_degraded(hr_vol, z, lambda x: self.degradation.simulate(x, self.generator))
        if self.synthetic:
            if self.strategy == "synthetic-i":
                return self._one_degraded(hr_vol, z, lambda x: synthetic_i(x, s))
            return self._one_degraded(hr_vol, z, lambda x: synthetic_ii(x, s, self.generator))
        assert self.lr is not None  # a real pair: the strategies above are the synthetic ones
        lr_vol = self.lr[v]
        i = self._randint(lr_vol.data.shape[1] - p + 1)
        j = self._randint(lr_vol.data.shape[2] - p + 1)
        return lr_vol.crop(z, i, j, p)[None], hr_vol.crop(z, i * s, j * s, p * s)[None]

    def _one_degraded(self, hr_vol: Volume3D, z: int, degrade: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Return an HR patch with a margin and its LR made by ``degrade``, both cropped to the patch."""
        s, p = self.scale, self.patch
        size = p + 2 * _MARGIN
        i = self._randint(hr_vol.data.shape[1] // s - size + 1)
        j = self._randint(hr_vol.data.shape[2] // s - size + 1)
        x = hr_vol.crop(z, i * s, j * s, size * s)[None, None]
        y = degrade(x)
        c = _MARGIN
        return y[0, :, c : c + p, c : c + p], x[0, :, c * s : (c + p) * s, c * s : (c + p) * s]

    def _one_axial(self, hr_vol: Volume3D, z: int) -> tuple[torch.Tensor, torch.Tensor]:
        """axial: an HR patch turned by k * 90 degrees, its rows sampled as sections sample z."""
        p, c = self.patch, self.degradation.margin()
        size = p + 2 * c
        i = self._randint(hr_vol.data.shape[1] - size + 1)
        j = self._randint(hr_vol.data.shape[2] - size + 1)
        x = torch.rot90(hr_vol.crop(z, i, j, size), self._randint(4), (-2, -1))[None, None]
        y = self.degradation.simulate(x, self.generator)
        return y[0, :, c : c + p, c : c + p], x[0, :, c : c + p, c : c + p]

    def _one_em(self, hr_vol: Volume3D, z: int) -> tuple[torch.Tensor, torch.Tensor]:
        """synthetic-em: a zoomed HR patch (scale augmentation), then a simulated LR scan of it."""
        s, p = self.scale, self.patch
        size = (p + 2 * _MARGIN) * s
        low, high = self.zoom_range
        u = float(torch.rand(1, generator=self.generator))
        factor = float(np.exp(np.log(low) + (np.log(high) - np.log(low)) * u))
        span = min(int(round(size * factor)), *hr_vol.data.shape[1:])
        i = self._randint(hr_vol.data.shape[1] - span + 1)
        j = self._randint(hr_vol.data.shape[2] - span + 1)
        x = zoom(hr_vol.crop(z, i, j, span)[None, None], span / size, size)
        y, x = synthetic_em(x, s, self.generator)
        c = _MARGIN
        return y[0, :, c : c + p, c : c + p], x[0, :, c * s : (c + p) * s, c * s : (c + p) * s]

    def sample_unpaired(self, volumes: Sequence[tuple[Volume3D, Any]], batch: int, size: int) -> torch.Tensor:
        """Return ``batch`` LR patches (batch, 1, size, size) that have no HR, drawn from ``volumes``.

        Each entry is a volume and a region (z0, z1, y0, y1, x0, x1) the patches must not overlap (the
        HR field), or None. A patch is drawn again (up to 100 times) while it overlaps the region; where
        none can lie outside it (a field that fills its slices), the last draw is kept. No rotation or
        flip: the degradation's probe has an orientation.
        """
        out = []
        for _ in range(batch):
            for _attempt in range(100):
                vol, exclude = volumes[self._randint(len(volumes))]
                z = vol.slices[self._randint(len(vol.slices))]
                i = self._randint(vol.data.shape[1] - size + 1)
                j = self._randint(vol.data.shape[2] - size + 1)
                if exclude is None or not _overlaps((z, i, j, size), exclude):
                    break
            out.append(vol.crop(z, i, j, size)[None])
        return torch.stack(out).contiguous()

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a batch: ``y`` (batch, 1, p, p) and ``x`` (batch, 1, s*p, s*p), float32, augmented."""
        ys, xs = [], []
        for _ in range(batch):
            y, x = self._one()
            k = 2 * self._randint(2) if self.axial else self._randint(4)  # axial: the sampled axis stays the rows
            flips = [d for d in (-1, -2) if self._randint(2)]
            y, x = torch.rot90(y, k, (-2, -1)), torch.rot90(x, k, (-2, -1))
            if flips:
                y, x = torch.flip(y, flips), torch.flip(x, flips)
            ys.append(y)
            xs.append(x)
        y, x = torch.stack(ys), torch.stack(xs)
        low, high = self.input_noise
        sigma = (low + (high - low) * torch.rand(batch, generator=self.generator)) / 255.0
        y = y + torch.randn(y.shape, generator=self.generator) * sigma.view(-1, 1, 1, 1)
        return y.contiguous(), x.contiguous()


def _overlaps(patch: tuple[int, int, int, int], region: tuple[int, int, int, int, int, int]) -> bool:
    z, i, j, size = patch
    z0, z1, y0, y1, x0, x1 = region
    return z0 <= z < z1 and i < y1 and i + size > y0 and j < x1 and j + size > x0


def noisier(y: torch.Tensor, sigma_range: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Return the noisier copy y' = y + N(0, sigma^2), sigma drawn per image from ``sigma_range`` (0..255 scale)."""
    low, high = sigma_range
    sigma = (low + (high - low) * torch.rand(y.shape[0], generator=generator)) / 255.0
    return y + torch.randn(y.shape, generator=generator) * sigma.view(-1, 1, 1, 1).to(y.dtype)
