"""Tiny random-weight models for prediction tests (mechanics only: they make no claim of quality).

PyTorch's default initialisation makes a deep random network almost ignore its input (outputs
vary by ~1e-2 and a pixel's influence dies out within ~10 pixels), which would let a wrong tiling
pass. :func:`sensitive_model` re-initialises the weights to preserve the signal's variance, so the
output depends on the input across the whole receptive field, then sets the last layer so that
outputs are about 0.5 +- 0.2 (the network's intensity range).
"""

from __future__ import annotations

import torch
from torch import nn

from napari_emsr import build_emsr

from .conftest import TINY


def sensitive_model(scale: int = 3, *, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    model = build_emsr(scale=scale, **{**TINY, **overrides}).eval()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.normal_(module.bias, std=0.01)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=module.in_features**-0.5)
    last = model.mapper[-1]
    with torch.inference_mode():
        probe = model(torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(seed)))
        last.weight.mul_(0.2 / probe.std())
        last.bias.mul_(0.2 / probe.std()).add_(0.5 - float(probe.mean()) * 0.2 / float(probe.std()))
    return model
