"""How much context a tile really needs: the network's *effective* receptive radius.

The theoretical receptive radius (``receptive_radius``: every conv, the wavelet smoothing and the
attention window, added up; 112 input pixels for the paper preset) makes tiled prediction exact
but costly: with 512-pixel tiles each output pixel is computed about 2.3 times. Far pixels inside
that radius barely matter, though. Here we measure on the data at hand how far an output pixel's
dependence reaches: the gradient of a few output pixels with respect to the input, and the
smallest radius r outside of which the gradient's total magnitude is below ``tolerance`` (in the
network's 0..1 intensity units). Changing every input pixel beyond r by the full intensity range
would then move the output by at most about ``tolerance`` (to first order): the default tolerance
is a quarter of an 8-bit grey level.

``benchmarks/predict_halo.py`` checks the resulting tiled output against whole-slice prediction.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_emsr.model.emsr import EMSR, receptive_radius

__all__ = ["effective_radius", "DEFAULT_TOLERANCE"]

#: a quarter of an 8-bit grey level, in the network's 0..1 units
DEFAULT_TOLERANCE = 0.25 / 255


def _probe_points(size: int, scale: int, window: int) -> list[tuple[int, int]]:
    """Output pixels near the centre at different positions within an attention window."""
    c = size // 2 // window * window
    return [((c + dy) * scale + scale // 2, (c + dx) * scale + scale // 2) for dy, dx in ((0, 0), (1, 2), (3, 1))]


def _radius_of(gradient: np.ndarray, centre: tuple[int, int], tolerance: float) -> int:
    """Smallest Chebyshev radius around ``centre`` whose outside holds at most ``tolerance`` of |gradient|."""
    h, w = gradient.shape
    yy, xx = np.mgrid[:h, :w]
    distance = np.maximum(np.abs(yy - centre[0]), np.abs(xx - centre[1])).ravel()
    mass = np.bincount(distance, weights=np.abs(gradient).ravel())
    outside = mass[::-1].cumsum()[::-1]  # outside[r] = mass at distance >= r
    beyond = np.append(outside[1:], 0.0)  # beyond[r] = mass at distance > r
    return int(np.argmax(beyond <= tolerance))


def effective_radius(
    model: EMSR, sample: np.ndarray, *, device: torch.device | str = "cpu", tolerance: float = DEFAULT_TOLERANCE
) -> int:
    """Input pixels of context an output pixel needs, measured on ``sample``.

    Parameters
    ----------
    model : EMSR
        The network (not modified; gradients are taken with respect to the input only).
    sample : ndarray, (H, W)
        An input image already mapped to the network's 0..1 range. Only a central crop is used,
        grown from 2 x 32 pixels until the radius found lies well inside it.
    device : torch.device or str
        Where to run the measurement.
    tolerance : float
        Allowed first-order change of an output pixel (0..1 units) when everything beyond the
        radius changes by the full range.

    Returns
    -------
    int
        A radius between 0 and the theoretical receptive radius (not snapped to the window).
    """
    config = model.config
    bound = receptive_radius(config)
    reach = min(32, bound)
    room = min(sample.shape) // 2 - config.window_size  # how far the sample reaches around its centre
    while True:  # grow the probed field until the radius found lies well inside it
        radius = _measure(model, sample, reach, device, tolerance)
        if radius + config.window_size >= room:
            return bound  # the sample is too small to see where the dependence ends: be safe
        if radius + config.window_size < reach or reach >= bound:
            return min(bound, radius)
        reach = min(2 * reach, bound)


def _measure(model: EMSR, sample: np.ndarray, reach: int, device, tolerance: float) -> int:
    """Return the radius measured on a central crop reaching ``reach`` pixels around the probe points."""
    window, s = model.config.window_size, model.config.scale
    side = 2 * reach + 2 * window
    h, w = sample.shape
    y0, x0 = max(0, (h - side) // 2 // window * window), max(0, (w - side) // 2 // window * window)
    crop = np.ascontiguousarray(sample[y0 : y0 + side, x0 : x0 + side], dtype=np.float32)
    size = min(crop.shape)
    crop = crop[:size, :size]
    points = _probe_points(size, s, window)
    x = torch.from_numpy(crop)[None, None].to(device).repeat(len(points), 1, 1, 1).requires_grad_(True)
    params = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        out = model(x.contiguous(memory_format=torch.channels_last))
        picked = torch.stack([out[i, 0, py, px] for i, (py, px) in enumerate(points)])
        (grad,) = torch.autograd.grad(picked.sum(), x)
    finally:
        for p, flag in zip(model.parameters(), params, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    grads = grad[:, 0].detach().cpu().numpy()
    return max(_radius_of(g, (py // s, px // s), tolerance) for g, (py, px) in zip(grads, points, strict=True))
