"""Tiled prediction of a block of slices: batched forward passes, blending, self-ensemble.

Everything here works on one *block*: ``k`` same-shaped 2D planes (k consecutive slices of a volume,
or one image), already read into memory. :func:`predict_block` is a generator that yields after
every forward pass (the number of tiles it finished) and returns the output block, so a caller can
report progress and stop cleanly between tiles by closing it.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, replace
from typing import Any, Generator, TypeVar

import numpy as np
import torch

from napari_emsr.device import is_out_of_memory, release_memory
from napari_emsr.predict.intensity import IntensityMap, check_finite
from napari_emsr.tiling import Tile, default_blend, iter_batches, tile_grid

__all__ = [
    "Geometry",
    "ModelRunner",
    "TileOutOfMemory",
    "OutOfMemoryWarning",
    "DIHEDRAL",
    "predict_block",
    "predict_planes",
    "prepare_model",
    "tiles_per_plane",
]

#: the 8 flips / rotations of the square: (number of 90-degree rotations, flip left-right first)
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


class OutOfMemoryWarning(UserWarning):
    """The device ran out of memory; the batch or tile was halved and the run goes on."""


class TileOutOfMemory(RuntimeError):
    """Even one tile per forward pass does not fit in the device's memory."""


@dataclass(frozen=True)
class Geometry:
    """How a plane is cut into tiles (input pixels): see :mod:`napari_emsr.tiling`."""

    tile: int
    halo: int
    blend: int
    window: int
    scale: int

    def grid(self, shape: tuple[int, int]) -> list[Tile]:
        """Return the tiles that cover a plane of ``shape`` (rows, columns)."""
        return tile_grid(shape, tile=self.tile, halo=self.halo, blend=self.blend, window=self.window)

    def halved(self) -> "Geometry":
        """Return the same geometry with half the tile (on the window grid); blend shrinks if it must."""
        tile = max(2 * self.window, (self.tile // 2) // self.window * self.window)
        return replace(self, tile=tile, blend=min(self.blend, default_blend(tile, self.window)))


_M = TypeVar("_M", bound=torch.nn.Module)


def prepare_model(model: _M, device: torch.device) -> _M:
    """Return a copy of ``model`` on ``device``, channels_last, in eval mode (the caller's is untouched)."""
    prepared = copy.deepcopy(model).to(device).eval()
    # torch's stubs omit Module.to(memory_format=...), which the runtime accepts
    return prepared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


class ModelRunner:
    """Runs the network on stacks of same-shaped tiles: channels_last, inference mode, fp32 or autocast.

    On an out-of-memory error the batch is halved and the tiles are retried; with a batch of one
    :class:`TileOutOfMemory` is raised so that the caller can use smaller tiles.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, batch: int, precision: str = "fp32") -> None:
        self.model, self.device, self.batch = model, device, int(batch)
        #: "fp32", or "bf16" / "fp16": the forward pass under autocast (weights stay fp32; output fp32)
        self.precision = precision
        self._autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """(B, h, w) float32 -> (B, h * s, w * s) float32."""
        outputs, start = [], 0
        while start < len(tiles):
            chunk = tiles[start : start + self.batch]
            try:
                outputs.append(self._forward(chunk))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_memory(self.device)
                if self.batch == 1:
                    size = f"{chunk.shape[1]} x {chunk.shape[2]}"
                    raise TileOutOfMemory(f"one {size} tile does not fit on {self.device}") from exc
                self.batch = max(1, self.batch // 2)
                warnings.warn(
                    f"out of memory on {self.device}: continuing with {self.batch} tile(s) per forward pass",
                    OutOfMemoryWarning,
                    stacklevel=2,
                )
                continue
            start += len(chunk)
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def _forward(self, chunk: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))[:, None]
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self._autocast or torch.bfloat16,
                                                    enabled=self._autocast is not None):  # fmt: skip
            y = self.model(x)
        return y[:, 0].float().cpu().numpy()


def _forward_transform(plane: np.ndarray, k: int, flip: bool) -> np.ndarray:
    return np.rot90(plane[:, ::-1] if flip else plane, k)


def _inverse_transform(plane: np.ndarray, k: int, flip: bool) -> np.ndarray:
    back = np.rot90(plane, -k)
    return back[:, ::-1] if flip else back


def _accumulate(target: np.ndarray, pred: np.ndarray, tile: Tile, geometry: Geometry) -> None:
    """Add a tile's weighted prediction (window at output resolution) into ``target``."""
    s, blend = geometry.scale, geometry.blend
    ys, xs = tile.used(blend)
    local = (slice(s * (ys.start - tile.y.start), s * (ys.stop - tile.y.start)),
             slice(s * (xs.start - tile.x.start), s * (xs.stop - tile.x.start)))  # fmt: skip
    weights = tile.weights(scale=s, blend=blend)[local]
    target[s * ys.start : s * ys.stop, s * xs.start : s * xs.stop] += pred[local] * weights


def predict_planes(
    planes: np.ndarray, runner: ModelRunner, geometry: Geometry, *, self_ensemble: bool = False, spread: bool = False
) -> Generator[int, None, Any]:
    """Tiled prediction of ``planes`` (k, H, W) float32 in network units -> (k, sH, sW) float32.

    Tiles of all planes are batched together (tile by tile, plane by plane). With
    ``self_ensemble``, the whole planes are flipped/rotated 8 ways, each predicted with its own tile
    grid, transformed back and averaged: the tiled result equals the self-ensemble of whole planes.
    With ``spread`` (and ``self_ensemble``) it returns ``(mean, std)``: the per-pixel standard
    deviation of the 8 predictions too. Yields the number of tiles finished after each forward pass.
    """
    if spread and not self_ensemble:
        raise ValueError("the spread of the self-ensemble needs self_ensemble=True")
    k, height, width = planes.shape
    s = geometry.scale
    out = np.zeros((k, s * height, s * width), dtype=np.float32)
    squares = np.zeros_like(out) if spread else None
    transforms = DIHEDRAL if self_ensemble else DIHEDRAL[:1]
    for rot, flip in transforms:
        views = [_forward_transform(p, rot, flip) for p in planes]
        seen = (k, s * views[0].shape[0], s * views[0].shape[1])
        target = out if len(transforms) == 1 else np.zeros(seen, np.float32)
        items = [(tile, j) for tile in geometry.grid(views[0].shape) for j in range(k)]
        for batch in iter_batches(items, runner.batch, key=lambda item: item[0].shape):
            preds = runner(np.stack([views[j][tile.read] for tile, j in batch]))
            for (tile, j), pred in zip(batch, preds, strict=True):
                _accumulate(target[j], pred, tile, geometry)
            yield len(batch)
        if target is not out:
            for j in range(k):
                back = _inverse_transform(target[j], rot, flip)
                out[j] += back
                if squares is not None:
                    squares[j] += back * back
    if len(transforms) > 1:
        out /= len(transforms)
    if squares is not None:
        return out, np.sqrt(np.maximum(squares / len(transforms) - out * out, 0.0))
    return out


def predict_block(
    raw: np.ndarray,
    runner: ModelRunner,
    geometry: Geometry,
    intensity: IntensityMap,
    *,
    self_ensemble: bool = False,
    crop: tuple[slice, slice] | None = None,
    where: str = "the input",
    spread: bool = False,
) -> Generator[int, None, Any]:
    """Super-resolve a raw block (k, h, w) of any real dtype -> (k, sh', sw') in ``intensity.dtype``.

    ``crop`` (output-pixel slices) keeps a region of the output, e.g. a region of interest that
    was read with context around it. With ``spread`` (and ``self_ensemble``) it returns
    ``(output, spread)``: the per-pixel standard deviation of the 8 predictions too, float32 in
    the output's raw intensity units. Yields tiles finished after each forward pass.
    """
    check_finite(raw, where)
    planes = intensity.to_network(raw)
    out = yield from predict_planes(planes, runner, geometry, self_ensemble=self_ensemble, spread=spread)
    std = None
    if spread:
        out, std = out
    if crop is not None:
        out = out[(slice(None), *crop)]
        std = None if std is None else std[(slice(None), *crop)]
    if std is None:
        return intensity.from_network(out)
    return intensity.from_network(out), (std * (intensity.high - intensity.low)).astype(np.float32)


def tiles_per_plane(shape: tuple[int, int], geometry: Geometry, *, self_ensemble: bool) -> int:
    """How many tiles one plane needs (all 8 transforms with self-ensemble)."""
    count = len(geometry.grid(shape))
    if self_ensemble:
        count += 3 * len(geometry.grid(shape)) + 4 * len(geometry.grid(shape[::-1]))
    return count
