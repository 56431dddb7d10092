"""Window multi-head self-attention (W-MSA) and the ViT block of EMSR (paper eq. 12-14).

The feature map is cut into non-overlapping M x M windows; self-attention runs inside each window,
so its cost is linear in the image area. As in the paper: pre-LayerNorm, no shifted windows, no
position bias, an MLP with ReLU. Inputs whose height or width is not a multiple of M are padded
(by the block itself) and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["window_partition", "window_reverse", "WindowAttention", "ViTBlock"]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/M * W/M, M * M, C); H and W must be multiples of M."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """(B * H/M * W/M, M * M, C) -> (B, H, W, C); the inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention within windows: (nW*B, N, C) -> (nW*B, N, C), N = M*M tokens.

    Q = X P_Q, K = X P_K, V = X P_V with d_k = C / heads; softmax(Q K^T / sqrt(d_k)) V per head;
    heads concatenated and projected.
    """

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend within each window: (windows, tokens, channels) -> the same shape."""
        n_win, tokens, channels = x.shape
        qkv = self.qkv(x).view(n_win, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (nW*B, heads, N, d_k)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d_k)) v
        return self.proj(out.transpose(1, 2).reshape(n_win, tokens, channels))


class ViTBlock(nn.Module):
    """X' = W-MSA(LN(X)) + X; X'' = MLP(LN(X')) + X'. Feature maps in and out: (B, C, H, W)."""

    def __init__(self, channels: int, num_heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window = window
        hidden = max(1, round(channels * mlp_ratio))
        self.norm1 = nn.LayerNorm(channels)
        self.attn = WindowAttention(channels, num_heads)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply window attention and the MLP, each with a residual: (B, C, H, W) -> the same shape."""
        b, c, h, w = x.shape
        m = self.window
        pad_h, pad_w = (-h) % m, (-w) % m
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        if pad_h or pad_w:
            tokens = F.pad(tokens, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        windows = window_partition(self.norm1(tokens), m)
        attended = window_reverse(self.attn(windows), m, hp, wp)
        tokens = tokens + attended
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens[:, :h, :w, :].permute(0, 3, 1, 2)
