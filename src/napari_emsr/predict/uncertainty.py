"""An uncertainty map: where the network's answer depends on how the slice is presented to it.

:func:`ensemble_spread` super-resolves with the 8-fold self-ensemble (the slice flipped and
rotated 8 ways, each predicted through the tiled engine, transformed back) and returns, beside the
mean, the per-pixel standard deviation of the 8 predictions, in the output's intensity units.

What it is: a cheap signal of where the network is guessing. Structures it reconstructs from
evidence come out the same whichever way the slice is turned; where it fills in detail the input
does not determine (fine membranes under noise, texture), the 8 answers disagree. What it is not: a
calibrated error bar or a probability. It misses errors all 8 predictions share (a systematic
bias, a structure the network never learnt), and it costs 8 predictions.
``benchmarks/uncertainty.py`` measures how well it ranks the absolute error on held-out data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ensemble_spread"]


def ensemble_spread(volume: Any, model: Any = None, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (the self-ensemble's mean, the per-pixel std of its 8 predictions) of an image or a stack.

    Parameters
    ----------
    volume : array-like, path or Volume
        A (y, x) image or (z, y, x) stack, read whole (this is for fields that fit in memory).
    model : EMSR, path, zoo name or None
        As :func:`napari_emsr.super_resolve` (None: the default model).
    **options
        :class:`~napari_emsr.predict.PredictOptions` fields (``tile``, ``overlap``, ``device``,
        ``precision``, ``pixel_size``, ...); ``self_ensemble`` is always on.

    Returns
    -------
    mean : ndarray
        The output in the input's dtype, equal to ``super_resolve(..., self_ensemble=True)``.
    spread : ndarray of float32
        The standard deviation of the 8 predictions per output pixel, in output intensity units.
    """
    from napari_emsr.predict.chunks import _exhaust
    from napari_emsr.predict.engine import ModelRunner, predict_planes
    from napari_emsr.predict.plan import make_plan

    plan = make_plan(volume, model, self_ensemble=True, **{k: v for k, v in options.items() if k != "self_ensemble"})
    try:
        runner = ModelRunner(plan.model, plan.device, plan.batch, plan.precision)
        data = np.asarray(plan.volume.data[(..., *plan.block)])
        stack = data if data.ndim == 3 else data[None]
        means, spreads = [], []
        for raw in stack:
            mean, std = _exhaust(predict_planes(plan.intensity.to_network(raw[None]), runner, plan.geometry,
                                                self_ensemble=True, spread=True))  # fmt: skip
            if plan.crop is not None:
                mean, std = mean[(slice(None), *plan.crop)], std[(slice(None), *plan.crop)]
            means.append(plan.intensity.from_network(mean)[0])
            spreads.append((std[0] * (plan.intensity.high - plan.intensity.low)).astype(np.float32))
    finally:
        plan.close()
    mean_out, spread_out = np.stack(means), np.stack(spreads)
    return (mean_out, spread_out) if data.ndim == 3 else (mean_out[0], spread_out[0])
