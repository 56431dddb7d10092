"""Bicubic resampling of 2D images and stacks of slices, as the paper uses it.

Cubic convolution (Keys, a = -0.5, as MATLAB's imresize and PIL; it reproduces linear ramps exactly)
with half-pixel centres, so that an image of n pixels of size p maps onto n*s pixels of size p/s
covering the same field. Down-sampling is antialiased (the kernel is widened by the factor, as
imresize does); borders are replicated. Used for the
bicubic baseline, synthetic LR images, and bringing real pairs to an integer ratio.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["resize", "resize_tensor", "bicubic_upsample", "bicubic_downsample"]


def resize(image: np.ndarray, shape: tuple[int, int], *, clip: bool = True) -> np.ndarray:
    """Bicubic resize of the last two axes of ``image`` to ``shape`` (float32 result).

    ``image`` is (H, W) or (..., H, W), any real dtype. With ``clip``, the result stays within the
    input's value range (bicubic overshoots at edges), which keeps integer round trips safe.
    """
    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"resize needs an image with at least 2 dimensions, got shape {image.shape}")
    out_h, out_w = (int(v) for v in shape)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"target shape must be positive, got {shape}")
    h, w = image.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"cannot resize an empty image of shape {image.shape}")
    y = resize_tensor(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), (out_h, out_w))
    if clip:
        y = y.clamp(float(image.min()), float(image.max()))
    return y.numpy()


def resize_tensor(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of the last two axes of a float tensor (any leading axes, any device)."""
    h, w = x.shape[-2:]
    lead = x.shape[:-2]
    y = _resize_axis(_resize_axis(x.reshape(-1, h, w), shape[0], axis=1), shape[1], axis=2)
    return y.reshape(*lead, *shape)


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights, each (n_out, taps), for resampling n_in samples to n_out."""
    factor = n_out / n_in
    stretch = min(factor, 1.0)  # < 1: widen the kernel to antialias
    width = 4.0 / stretch
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) / factor - 0.5
    first = torch.floor(centre - width / 2)
    taps = int(np.ceil(width)) + 2
    index = first[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    weight = stretch * _cubic(stretch * (centre[:, None] - index))
    weight = weight / weight.sum(dim=1, keepdim=True)
    return index.clamp(0, n_in - 1).long(), weight.float()


def _resize_axis(x: torch.Tensor, n_out: int, axis: int) -> torch.Tensor:
    """Resample (N, H, W) along ``axis`` (1 or 2) to ``n_out`` samples, one tap at a time."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    index, weight = _taps(n_in, n_out)
    index, weight = index.to(x.device), weight.to(x.device, x.dtype)
    shape = [1, 1, 1]
    shape[axis] = n_out
    out: torch.Tensor | None = None
    for k in range(index.shape[1]):
        term = x.index_select(axis, index[:, k]) * weight[:, k].view(shape)
        out = term if out is None else out.add_(term)
    assert out is not None  # every output pixel has at least one tap
    return out


def bicubic_upsample(image: np.ndarray, scale: int, *, clip: bool = True) -> np.ndarray:
    """Bicubic up-sampling of the last two axes by an integer ``scale`` (the baseline of every table)."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    h, w = np.shape(image)[-2:]
    return resize(image, (h * int(scale), w * int(scale)), clip=clip)


def bicubic_downsample(image: np.ndarray, scale: int, *, clip: bool = True) -> np.ndarray:
    """Antialiased bicubic down-sampling of the last two axes by an integer ``scale``.

    Height and width must be multiples of ``scale`` (crop first), so that the LR pixel grid covers
    exactly the HR field.
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    h, w = np.shape(image)[-2:]
    if h % scale or w % scale:
        raise ValueError(f"height and width ({h}, {w}) must be multiples of the scale {scale}; crop the image first")
    return resize(image, (h // int(scale), w // int(scale)), clip=clip)
