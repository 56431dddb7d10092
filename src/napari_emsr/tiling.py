"""Tile grids with a halo, and smooth blending weights, for tiled super-resolution.

Pure functions of shapes and numbers (numpy only), so they can be tested on their own.

Along one axis of length ``L`` (input pixels) a grid is a sequence of *windows* (what goes through
the network) that overlap. Each window owns a *core* (the cores partition ``[0, L)``); the boundary
between two cores lies in the middle of the two windows' overlap. Around each core boundary the two
predictions cross-fade over ``2 * blend`` input pixels with raised-cosine weights that sum to 1;
outside the cross-fade each output pixel comes from one window only. Every output pixel that gets a
non-zero weight from a window lies at least ``halo`` input pixels from that window's edges, except
where the edge is the image border (there the window sees what the whole image sees).

So when ``halo`` is at least the network's receptive radius, each window's contribution equals the
whole-image prediction, and so does the blended result: tiled == whole (up to float rounding).
A smaller halo is cheaper and only approximately equal; the cross-fade then hides the seams.

Windows start on multiples of the attention window ``M`` (so window attention partitions a tile
exactly as it partitions the whole image), have a common length (a multiple of ``M``, so tiles can
be batched) and the last one ends at the image border (so the network pads it as it pads the whole
image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = [
    "AxisTile",
    "Tile",
    "axis_tiles",
    "tile_grid",
    "window_span",
    "blend_profile",
    "snap_up",
    "default_blend",
    "iter_batches",
]


def snap_up(value: int, multiple: int) -> int:
    """Return the smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // multiple) * multiple


def default_blend(tile: int, window: int) -> int:
    """Return the default cross-fade half-width: two attention windows, less for very small tiles."""
    return max(0, min(2 * window, (tile - 2 * window) // 4))


def window_span(tile: int, halo: int, blend: int, window: int) -> int:
    """Length of a full window (network input): the core plus halo and cross-fade on both sides."""
    return snap_up(tile + 2 * (halo + blend), window)


@dataclass(frozen=True)
class AxisTile:
    """One window along one axis, in input pixels.

    ``start:stop`` is read and fed to the network. ``low`` and ``high`` are the core boundaries
    shared with the previous and next window (None at the image border): the core is
    ``[low, high)`` and the window's output is used (with a weight > 0) on
    ``[low - blend, high + blend)``.
    """

    start: int
    stop: int
    low: int | None
    high: int | None

    @property
    def size(self) -> int:
        """The window's length in input pixels."""
        return self.stop - self.start

    def used(self, blend: int) -> tuple[int, int]:
        """Return the input-pixel range ``[a, b)`` where this window's output has a non-zero weight."""
        a = self.start if self.low is None else max(self.start, self.low - blend)
        b = self.stop if self.high is None else min(self.stop, self.high + blend)
        return a, b


def _starts(last: int, n: int, window: int) -> list[int]:
    """``n`` window starts from 0 to ``last`` (both multiples of ``window``), evenly spread."""
    return [window * round(i * last / ((n - 1) * window)) for i in range(n)]


def axis_tiles(length: int, *, tile: int, halo: int, blend: int, window: int) -> tuple[AxisTile, ...]:
    """Return the windows covering one axis of ``length`` input pixels.

    Parameters
    ----------
    length : int
        Axis length in input pixels.
    tile : int
        Nominal core size: each window contributes about this many pixels (at least this many,
        except the last). A multiple of ``window``.
    halo : int
        Context, in input pixels, that every used output pixel has from a window edge that is not
        the image border.
    blend : int
        Half-width of the cross-fade between neighbouring windows (0: a hard cut).
    window : int
        The attention window ``M``: window starts and lengths are multiples of it.

    Returns
    -------
    tuple of AxisTile
        In increasing order. A single window ``[0, length)`` when the axis fits in one.
    """
    if length < 1:
        raise ValueError(f"cannot tile an axis of length {length}")
    if tile < window or tile % window:
        raise ValueError(f"tile ({tile}) must be a positive multiple of the window size {window}")
    if halo < 0 or blend < 0:
        raise ValueError(f"halo ({halo}) and blend ({blend}) must not be negative")
    if tile < 4 * blend + 2 * window:
        raise ValueError(
            f"tile ({tile}) must be at least 4 x blend + 2 x window ({4 * blend + 2 * window}) so that "
            "neighbouring cross-fades never meet; use a larger tile or a smaller blend"
        )
    span = window_span(tile, halo, blend, window)
    last = (length - span) // window * window  # start of the window that ends at the border
    if length <= span or last <= 0:
        return (AxisTile(0, length, None, None),)
    stride = span - 2 * (halo + blend)  # >= tile: neighbours overlap by >= 2 * (halo + blend)
    n = 1 + math.ceil(last / stride)
    starts = _starts(last, n, window)
    while max(b - a for a, b in zip(starts, starts[1:], strict=False)) > stride:
        n += 1
        starts = _starts(last, n, window)
    stops = [s + span for s in starts[:-1]] + [length]
    bounds = [(starts[i + 1] + stops[i]) // 2 for i in range(n - 1)]
    return tuple(
        AxisTile(starts[i], stops[i], bounds[i - 1] if i else None, bounds[i] if i < n - 1 else None)
        for i in range(n)
    )


def blend_profile(axis: AxisTile, *, scale: int, blend: int) -> np.ndarray:
    """Weights of a window's output along one axis, at output resolution (float32, ``size * scale``).

    1 inside the core, 0 beyond the cross-fade, a raised cosine ``sin(pi t / 2)**2`` across each
    core boundary. Neighbouring profiles sum to exactly 1, because ``S(t) + S(1 - t) = 1``.
    """
    # output pixel centres in input-pixel coordinates (pixel i covers [i, i + 1))
    x = axis.start + (np.arange(axis.size * scale, dtype=np.float64) + 0.5) / scale
    weight = np.ones_like(x)
    if axis.low is not None:
        weight *= _rise(x, axis.low, blend)
    if axis.high is not None:
        weight *= 1.0 - _rise(x, axis.high, blend)
    return weight.astype(np.float32)


def _rise(x: np.ndarray, centre: int, blend: int) -> np.ndarray:
    """0 before ``centre - blend``, 1 after ``centre + blend``, raised cosine between."""
    if blend == 0:
        return (x > centre).astype(np.float64)
    t = np.clip((x - (centre - blend)) / (2 * blend), 0.0, 1.0)
    return np.sin(0.5 * np.pi * t) ** 2


@dataclass(frozen=True)
class Tile:
    """A 2D window: the product of a y and an x :class:`AxisTile`."""

    y: AxisTile
    x: AxisTile

    @property
    def read(self) -> tuple[slice, slice]:
        """Input-pixel slices of the window."""
        return slice(self.y.start, self.y.stop), slice(self.x.start, self.x.stop)

    @property
    def shape(self) -> tuple[int, int]:
        """The window's (rows, columns)."""
        return self.y.size, self.x.size

    def used(self, blend: int) -> tuple[slice, slice]:
        """Input-pixel slices (image coordinates) where the window's output gets a weight > 0."""
        (y0, y1), (x0, x1) = self.y.used(blend), self.x.used(blend)
        return slice(y0, y1), slice(x0, x1)

    def weights(self, *, scale: int, blend: int) -> np.ndarray:
        """Blending weights of the whole window at output resolution: (size_y * s, size_x * s)."""
        wy = blend_profile(self.y, scale=scale, blend=blend)
        wx = blend_profile(self.x, scale=scale, blend=blend)
        return wy[:, None] * wx[None, :]


def tile_grid(shape: tuple[int, int], *, tile: int, halo: int, blend: int, window: int) -> list[Tile]:
    """All windows of a (height, width) image, row by row; same-shaped windows come out together.

    See :func:`axis_tiles` for the parameters. The weights of all windows sum to 1 at every output
    pixel (a partition of unity), so the blended output needs no normalisation.
    """
    ys = axis_tiles(shape[0], tile=tile, halo=halo, blend=blend, window=window)
    xs = axis_tiles(shape[1], tile=tile, halo=halo, blend=blend, window=window)
    tiles = [Tile(y, x) for y in ys for x in xs]
    return sorted(tiles, key=lambda t: t.shape)


def iter_batches(tiles: list, batch: int, key) -> Iterator[list]:
    """Consecutive runs of at most ``batch`` items whose ``key`` (e.g. the tile shape) is equal."""
    run: list = []
    for item in tiles:
        if run and (len(run) == batch or key(run[0]) != key(item)):
            yield run
            run = []
        run.append(item)
    if run:
        yield run
