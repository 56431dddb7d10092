"""An uncertainty map: where the network's answer depends on how the slice is presented to it.

:func:`ensemble_spread` super-resolves with the 8-fold self-ensemble (the slice flipped and
rotated 8 ways, each predicted through the tiled engine, transformed back) and returns, beside the
mean, the per-pixel standard deviation of the 8 predictions, in the output's intensity units.

What it is: a signal of where the network is guessing. Structures it reconstructs from
evidence come out the same whichever way the slice is turned; where it fills in detail the input
does not determine (fine membranes under noise, texture), the 8 answers disagree. What it is not: a
calibrated error bar or a probability. It misses errors all 8 predictions share (a systematic
bias, a structure the network never learnt), and it costs 8 predictions.
``benchmarks/uncertainty.py`` measures how well it ranks the absolute error on held-out data of
four modalities: its most uncertain tenth holds about 1.5 times the large errors of a random
tenth, about as many as the output's gradient magnitude finds (docs/prediction.md).

The engine computes it (:func:`napari_emsr.iter_super_resolve` with ``uncertainty=``), streamed
to a file beside the result; :func:`ensemble_spread` is the in-memory shortcut.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ensemble_spread"]


def ensemble_spread(volume: Any, model: Any = None, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (the self-ensemble's mean, the per-pixel std of its 8 predictions) of an image or a stack.

    :func:`napari_emsr.super_resolve` with ``uncertainty=True``, in memory; for a volume written to
    disk with its map, give ``super_resolve`` / ``iter_super_resolve`` (or ``emsr predict
    --uncertainty``) an output path and an uncertainty path.

    Parameters
    ----------
    volume : array-like, path or Volume
        A (y, x) image or (z, y, x) stack.
    model : EMSR, path, zoo name or None
        As :func:`napari_emsr.super_resolve` (None: the default model).
    **options
        :class:`~napari_emsr.predict.PredictOptions` fields (``tile``, ``overlap``, ``device``,
        ``precision``, ``pixel_size``, ``region``, ...); ``self_ensemble`` is always on.

    Returns
    -------
    mean : ndarray
        The output in the input's dtype, equal to ``super_resolve(..., self_ensemble=True)``.
    spread : ndarray of float32
        The standard deviation of the 8 predictions per output pixel, in output intensity units.
    """
    from napari_emsr.predict.api import super_resolve

    options.pop("self_ensemble", None)
    mean, spread = super_resolve(volume, model, uncertainty=True, **options)
    return mean, spread
