"""A-trous (undecimated) wavelet transform with the B3-spline kernel (starlet).

The image is smoothed J times with the separable kernel h = [1, 4, 6, 4, 1] / 16, dilated by 2**j at
scale j (holes "a trous" between the taps). Scale j's detail is the difference of two successive
smoothings, so the details and the last smooth image sum back to the input exactly. Details are
sparse and large on edges: EMSR uses them as multi-scale, noise-robust edge maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AtrousWavelet", "atrous_wavelet"]

_B3 = (1.0, 4.0, 6.0, 4.0, 1.0)


def _smooth(x: torch.Tensor, kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """Separable B3-spline smoothing of (N, C, H, W) with replicated borders."""
    channels = x.shape[1]
    pad = 2 * dilation
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    kx = kernel.view(1, 1, 1, 5).expand(channels, 1, 1, 5)
    ky = kernel.view(1, 1, 5, 1).expand(channels, 1, 5, 1)
    x = F.conv2d(x, kx, dilation=(1, dilation), groups=channels)
    return F.conv2d(x, ky, dilation=(dilation, 1), groups=channels)


def atrous_wavelet(x: torch.Tensor, scales: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Decompose ``x`` (N, C, H, W) into ``scales`` detail images and one smooth residual.

    Returns ``(details, smooth)`` with ``x == sum(details) + smooth`` up to rounding; each detail
    has the shape of ``x``. Works for any H, W >= 1 (borders are replicated).
    """
    if x.ndim != 4:
        raise ValueError(f"atrous_wavelet expects (N, C, H, W), got shape {tuple(x.shape)}")
    kernel = torch.tensor(_B3, dtype=x.dtype, device=x.device) / 16.0
    details = []
    current = x
    for j in range(scales):
        smoother = _smooth(current, kernel, 2**j)
        details.append(current - smoother)
        current = smoother
    return details, current


class AtrousWavelet(nn.Module):
    """Module form of :func:`atrous_wavelet` returning the details stacked on the channel axis.

    (N, C, H, W) -> (N, C * scales, H, W), finest scale first. Has no parameters.
    """

    def __init__(self, scales: int = 3) -> None:
        super().__init__()
        self.scales = scales
        self.register_buffer("kernel", torch.tensor(_B3) / 16.0, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the wavelet details of ``x`` stacked on the channel axis."""
        details, _ = atrous_wavelet(x, self.scales)
        return torch.cat(details, dim=1)
