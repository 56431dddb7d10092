"""Two baseline networks for the fine-tuning benchmark, trained with EMSR's own recipe.

Does EMSR earn its complexity at a CPU budget? The baselines answer it:

- ``cnn8``: a plain residual CNN, 8 3x3 convolutions of 64 channels with ReLU, a global skip from the
  first, then a pixel-shuffle up-sampling and a 3x3 convolution to one channel (the ESPCN / SRResNet
  family without batch normalisation);
- ``unet``: a CARE-style U-Net on the bicubically up-sampled input, two down-sampling levels of two
  3x3 convolutions each (32, 64, 128 channels), skip connections, and a residual output on top of
  the bicubic input, as CSBDeep's CARE models do.

They are trained like EMSR is fine-tuned: the same patch sampler (``napari_emsr.training.sampler``:
patches, rot90/flips, input noise), the same loss (eq. 16 with the noisier copy y'), Adam at the same
learning rate, batch, bf16 autocast and the same time budget; only the network differs. They are not
part of the package.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from napari_emsr.config import TrainingConfig
from napari_emsr.training.losses import emsr_loss
from napari_emsr.training.sampler import PatchSampler, Volume3D, noisier

__all__ = ["ResidualCNN", "CareUNet", "BASELINES", "train_baseline", "predict_baseline"]


class ResidualCNN(nn.Module):
    """Eight 3x3 convolutions with a global skip, then pixel shuffle."""

    def __init__(self, scale: int, channels: int = 64, layers: int = 8) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        body = []
        for _ in range(layers - 1):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*body)
        self.up = nn.Sequential(nn.Conv2d(channels, channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.tail = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = self.head(y)
        x = x + self.body(x)
        return self.tail(self.up(x))


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))  # fmt: skip


class CareUNet(nn.Module):
    """A two-level U-Net on the bicubic up-sampling, predicting a residual on top of it."""

    def __init__(self, scale: int, base: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.enc1, self.enc2 = _block(1, base), _block(base, 2 * base)
        self.mid = _block(2 * base, 4 * base)
        self.dec2, self.dec1 = _block(6 * base, 2 * base), _block(3 * base, base)
        self.out = nn.Conv2d(base, 1, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(y, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h, w = up.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        x = F.pad(up, (0, pw, 0, ph), mode="reflect")
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return up + self.out(d1)[..., :h, :w]


BASELINES = {"cnn8": ResidualCNN, "unet": CareUNet}


def train_baseline(name: str, hr: np.ndarray, lr: np.ndarray, scale: int, config: TrainingConfig) -> tuple:
    """Train baseline ``name`` on an aligned pair (uint8 stacks) for ``config.minutes``; return (model, steps)."""
    torch.manual_seed(config.seed)
    model = BASELINES[name](scale).train()
    sampler = PatchSampler([Volume3D(hr, range(hr.shape[0]))], [Volume3D(lr, range(lr.shape[0]))], scale,
                           config.patch, "real", config.input_noise, seed=config.seed)  # fmt: skip
    noise = torch.Generator().manual_seed(config.seed + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    assert config.minutes is not None
    deadline, steps = time.perf_counter() + 60 * config.minutes, 0
    while time.perf_counter() < deadline:
        y, x = sampler.sample(config.batch)
        y = torch.cat([y, noisier(y, config.noisier_noise, noise)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            out = model(y)
        out = out.float()
        loss, _ = emsr_loss(out[: config.batch], x, out[config.batch :], norm=config.loss, weights=config.weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    return model.eval(), steps


@torch.inference_mode()
def predict_baseline(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    """Whole-slice prediction of a uint8 LR stack, on the 0..255 scale."""
    out = [model(torch.from_numpy(s / 255.0).float()[None, None]).clamp(0, 1)[0, 0].numpy() * 255 for s in lr]
    return np.stack(out)
