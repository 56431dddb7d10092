"""Reading the input of a unit of work: blocks of consecutive slices, one chunk-deep slab cached.

Used by the units of work (:mod:`napari_emsr.predict.chunks`) and by the content fingerprint of
a plan (:mod:`napari_emsr.predict.plan`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["UNIT_BYTES", "SlabReader", "read_block"]

#: memory budget of one unit's float32 output accumulators (and of a cached input slab)
UNIT_BYTES = 512 * 2**20


class SlabReader:
    """Reads blocks of consecutive slices, caching one input chunk-deep slab.

    Slice-by-slice reading of a zarr chunked 64 deep would decompress each chunk 64 times; this
    keeps the last chunk's slab (if it fits in :data:`UNIT_BYTES`) so each chunk is read once when
    slices come in order.
    """

    def __init__(self, data: Any, block: tuple[slice, slice]) -> None:
        self.data, self.block = data, block
        self._slab: tuple[int, int, np.ndarray] | None = None
        chunks = getattr(data, "chunks", None)
        self._edges = np.cumsum((0, *chunks[0])) if data.ndim == 3 and chunks else None

    def _slab_of(self, z: int) -> tuple[int, int] | None:
        if self._edges is None:
            return None
        i = int(np.searchsorted(self._edges, z, side="right")) - 1
        start, stop = int(self._edges[i]), int(self._edges[i + 1])
        plane = (self.block[0].stop - self.block[0].start) * (self.block[1].stop - self.block[1].start)
        if stop - start < 2 or (stop - start) * plane * self.data.dtype.itemsize > UNIT_BYTES:
            return None
        return start, stop

    def read(self, slices: tuple[int | None, ...]) -> np.ndarray:
        """Return the block of ``slices`` (consecutive, or ``(None,)`` for 2D): (k, h, w)."""
        if slices == (None,):
            return np.asarray(_compute(self.data[self.block]))[None]
        first, last = slices[0], slices[-1]
        assert first is not None and last is not None  # only 2D data has the slice None
        z0, z1 = first, last + 1
        slab = self._slab_of(z0)
        if slab is None or z1 > slab[1]:
            return np.asarray(_compute(self.data[(slice(z0, z1), *self.block)]))
        if self._slab is None or self._slab[:2] != slab:
            self._slab = (*slab, np.asarray(_compute(self.data[(slice(*slab), *self.block)])))
        return self._slab[2][z0 - slab[0] : z1 - slab[0]]


def _compute(array: Any) -> Any:
    compute = getattr(array, "compute", None)
    return compute(scheduler="synchronous") if compute is not None else array


def read_block(data: Any, slices: tuple[int | None, ...], block: tuple[slice, slice]) -> np.ndarray:
    """Read one unit's input (k, h, w) without caching."""
    return SlabReader(data, block).read(slices)
