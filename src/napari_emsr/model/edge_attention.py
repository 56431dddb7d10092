"""The edge-attention basic block of EMSR (paper section II-C-2, Fig. 3).

One basic block, feature maps (B, C, H, W) and the LR image (B, 1, H, W) in, features out:

1. m residual blocks;
2. two parallel paths of n residual blocks each:
   - upper: deep features D;
   - lower: then conv + ReLU + conv, an image R reconstructed in LR space;
3. a-trous wavelet details (J scales) of R and of the LR input; at each scale the pair is filtered
   into C feature maps, and the attention block turns the J filtered maps into C attention maps A
   (multi-scale: scale j is seen through a conv dilated by 2**j; fused by a 1x1 conv; sigmoid);
4. edge-attended features D + D * A;
5. a ViT block with window multi-head self-attention, then a 3x3 conv;
6. a residual connection around the whole block (our choice; the paper's long skip is in emsr.py).
"""

from __future__ import annotations

import torch
from torch import nn

from napari_emsr.model.wavelet import AtrousWavelet
from napari_emsr.model.window_attention import ViTBlock

__all__ = ["ResidualBlock", "EdgeAttention", "BasicBlock"]


def conv3x3(c_in: int, c_out: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation)


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))): (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True), conv3x3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` plus the residual branch's output."""
        return x + self.body(x)


class EdgeAttention(nn.Module):
    """Multi-scale edge attention maps from two images: (B,1,H,W), (B,1,H,W) -> (B, C, H, W) in (0, 1).

    The images are the LR input and the block's LR-space reconstruction of it. Each wavelet scale's
    pair of detail images is filtered separately (conv, ReLU, conv); the attention block looks at
    scale j through a 3x3 conv dilated by 2**j, fuses all scales with a 1x1 conv and a sigmoid.
    """

    def __init__(self, channels: int, in_channels: int, scales: int) -> None:
        super().__init__()
        self.scales = scales
        self.in_channels = in_channels
        self.wavelet = AtrousWavelet(scales)
        pair = 2 * in_channels
        self.filters = nn.ModuleList(
            nn.Sequential(conv3x3(pair, channels), nn.ReLU(inplace=True), conv3x3(channels, channels))
            for _ in range(scales)
        )
        self.attend = nn.ModuleList(conv3x3(channels, channels, dilation=2**j) for j in range(scales))
        self.fuse = nn.Conv2d(scales * channels, channels, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, lr: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Return the attention maps from the edges of the LR image and of its reconstruction."""
        c = self.in_channels
        # (B, c*J, H, W) each; channels grouped by scale, finest first
        edges_lr, edges_rec = self.wavelet(lr), self.wavelet(recon)
        maps = []
        for j in range(self.scales):
            pair = torch.cat([edges_lr[:, j * c : (j + 1) * c], edges_rec[:, j * c : (j + 1) * c]], dim=1)
            maps.append(self.act(self.attend[j](self.filters[j](pair))))
        return torch.sigmoid(self.fuse(torch.cat(maps, dim=1)))


class BasicBlock(nn.Module):
    """One edge-attention basic block: features (B, C, H, W) and LR image (B, c, H, W) -> (B, C, H, W)."""

    def __init__(
        self,
        channels: int,
        in_channels: int,
        num_res_blocks: int,
        num_path_blocks: int,
        wavelet_scales: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.res_blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(num_res_blocks)))
        self.upper = nn.Sequential(*(ResidualBlock(channels) for _ in range(num_path_blocks)))
        self.lower = nn.Sequential(
            *(ResidualBlock(channels) for _ in range(num_path_blocks)),
            conv3x3(channels, channels),
            nn.ReLU(inplace=True),
            conv3x3(channels, in_channels),
        )
        self.edge_attention = EdgeAttention(channels, in_channels, wavelet_scales)
        self.vit = ViTBlock(channels, num_heads, window_size, mlp_ratio)
        self.conv = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """Apply the block to features ``x``, the edge attention guided by the LR image ``lr``."""
        features = self.res_blocks(x)
        deep = self.upper(features)
        recon = self.lower(features)  # the LR image as this block sees it
        attention = self.edge_attention(lr, recon)
        attended = deep + deep * attention
        return x + self.conv(self.vit(attended))
