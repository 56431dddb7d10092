"""The EMSR network (paper section II-C, Fig. 2 and 3).

    y (B, c, H, W), intensities normalised to about [0, 1]
    -> feature extractor: one 3x3 conv                          X_SF (B, C, H, W)
    -> k edge-attention basic blocks, then a 3x3 conv            X_EA (B, C, H, W)
    -> long skip: X_EA + X_SF
    -> reconstruction: 3x3 conv to C*s*s, pixel shuffle x s,
       mapper (3x3 conv, ReLU, 3x3 conv)                         x (B, c, sH, sW)

The network pads its input (reflecting) to multiples of the attention window and crops the output
back, so any height and width work and no content is resized.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from napari_emsr.config import ConfigError, EMSRConfig
from napari_emsr.model.edge_attention import BasicBlock, conv3x3
from napari_emsr.model.metadata import ModelMetadata

__all__ = ["EMSR", "build_emsr", "receptive_radius"]


class EMSR(nn.Module):
    """EMSR super-resolution network built from a validated :class:`EMSRConfig`.

    ``forward``: (B, in_channels, H, W) -> (B, out_channels, H * scale, W * scale).
    ``metadata`` carries what a model file stores besides the weights (see ``save_model``).
    """

    def __init__(self, config: EMSRConfig) -> None:
        super().__init__()
        self.config = config
        c, s = config.channels, config.scale
        self.head = conv3x3(config.in_channels, c)
        self.blocks = nn.ModuleList(
            BasicBlock(
                channels=c,
                in_channels=config.in_channels,
                num_res_blocks=config.num_res_blocks,
                num_path_blocks=config.num_path_blocks,
                wavelet_scales=config.wavelet_scales,
                num_heads=config.num_heads,
                window_size=config.window_size,
                mlp_ratio=config.mlp_ratio,
            )
            for _ in range(config.num_blocks)
        )
        self.body_conv = conv3x3(c, c)
        self.upsample = nn.Sequential(conv3x3(c, c * s * s), nn.PixelShuffle(s))
        self.mapper = nn.Sequential(conv3x3(c, c), nn.ReLU(inplace=True), conv3x3(c, config.out_channels))
        # Filled by load_model / training; describes where the weights came from.
        self.metadata = ModelMetadata()

    @property
    def scale(self) -> int:
        """The upscaling factor."""
        return self.config.scale

    def _pad(self, y: torch.Tensor) -> torch.Tensor:
        m = self.config.window_size
        h, w = y.shape[-2:]
        pad_h, pad_w = (-h) % m, (-w) % m
        if not (pad_h or pad_w):
            return y
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        return F.pad(y, (0, pad_w, 0, pad_h), mode=mode)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Super-resolve a (B, C, H, W) batch to (B, C_out, scale*H, scale*W)."""
        if y.ndim != 4 or y.shape[1] != self.config.in_channels:
            raise ValueError(
                f"EMSR expects a (batch, {self.config.in_channels}, height, width) tensor, got shape {tuple(y.shape)}"
            )
        h, w = y.shape[-2:]
        y = self._pad(y)
        shallow = self.head(y)
        x = shallow
        for block in self.blocks:
            x = block(x, y)
        x = self.body_conv(x) + shallow
        out = self.mapper(self.upsample(x))
        if self.config.global_residual:  # scale 1: the output is the input corrected
            out = out + y
        s = self.config.scale
        return out[..., : h * s, : w * s]


def receptive_radius(config: EMSRConfig) -> int:
    """Return a bound on how far (in input pixels) an output pixel can see, beyond its own input pixel.

    Counts every 3x3 conv (radius 1, or its dilation), the wavelet's smoothing (2 * 2**j per scale)
    and the attention window (M - 1). Tiled prediction uses it to size the halo of each tile.
    """
    wavelet = sum(2 * 2**j for j in range(config.wavelet_scales))
    attend = 2 ** (config.wavelet_scales - 1)
    lower = 2 * config.num_path_blocks + 2  # residual blocks, then conv, ReLU, conv
    edge = lower + wavelet + 2 + attend  # edges of the reconstruction, filtered, attended
    per_block = 2 * config.num_res_blocks + max(2 * config.num_path_blocks, edge) + (config.window_size - 1) + 1
    head, body, up = 1, 1, 1
    mapper = -(-2 // config.scale)  # two 3x3 convs at the output resolution, in input pixels
    return head + config.num_blocks * per_block + body + up + mapper


def build_emsr(config: EMSRConfig | str | None = None, **overrides: Any) -> EMSR:
    """Build an EMSR network with random weights.

    Parameters
    ----------
    config : EMSRConfig, str or None
        A config, the name of a preset (``"paper"``, ``"lite"``), or None for the paper's settings.
    **overrides
        Config values to change, e.g. ``scale=2`` or ``channels=32``.

    Examples
    --------
    >>> model = build_emsr("lite", scale=2)
    >>> model.config.scale
    2
    """
    if config is None:
        config = EMSRConfig.preset("paper", **overrides)
    elif isinstance(config, str):
        config = EMSRConfig.preset(config, **overrides)
    elif isinstance(config, EMSRConfig):
        config = config.replace(**overrides) if overrides else config
    else:
        raise ConfigError(f"config must be an EMSRConfig, a preset name or None, got {type(config).__name__}")
    return EMSR(config)
