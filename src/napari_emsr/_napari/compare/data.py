"""What the "Compare" panel compares: the same pixels of a reference and of each method, by world position.

Layers overlay in napari's world coordinates (``scale`` and ``translate``, in nm where the units say
so). A method is compared with the reference on the field they share: it must have the reference's
pixel size and lie on the same pixel grid (shifted by whole pixels); its pixels are then cut to the
common field of all layers. A Super-resolve result of a whole LR stack is thus compared on the HR
field inside it, and two layers that differ only by a border on their common part.

The LR layer stands for bicubic up-sampling: its bicubic x s (``napari_emsr.resample.bicubic_upsample``,
the convention of ``emsr evaluate --lr``) is placed as Super-resolve places a result, and up-samples
the LR pixels under the common field (which is cut at LR pixel edges), as ``emsr evaluate --lr``
does with an LR file of that field.

z-consistency (:func:`z_plan`) compares whole layers instead: each ticked layer that is a 3-D
result of the LR stack by its shape (the LR's slices, ``s`` times its pixels in y and x, the rule
of :func:`napari_emsr.metrics.z_scale`), and bicubic x s of the whole LR, against the LR
(:func:`whole_stack` reads them slice by slice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["Source", "layer_source", "bicubic_source", "common_field", "Field", "FieldStack", "whole_stack", "z_plan"]

_GRID_TOLERANCE = 0.01  # pixels


@dataclass(frozen=True)
class Source:
    """Something to compare: a label, a (z, y, x) placement in the world, and a way to read a region."""

    label: str
    shape: tuple[int, int, int]
    scale: np.ndarray
    translate: np.ndarray
    read: Callable[[int, slice, slice], np.ndarray]
    dtype: np.dtype
    ndim: int
    step: int = 1  # the field must start and end on multiples of this many pixels (LR pixel edges)


@dataclass(frozen=True)
class Field:
    """The common field in reference pixels: slices ``z`` and rows/columns ``y``, ``x``."""

    z: range
    y: slice
    x: slice
    shifts: dict[str, np.ndarray]

    def read(self, source: Source, z_ref: int) -> np.ndarray:
        """Return the source's pixels of reference slice ``z_ref`` over the common field."""
        dz, dy, dx = (int(v) for v in self.shifts[source.label])
        return np.asarray(source.read(z_ref + dz, slice(self.y.start + dy, self.y.stop + dy),
                                      slice(self.x.start + dx, self.x.stop + dx)))  # fmt: skip

    def describe(self) -> str:
        """Return the field in words: ``"16 slice(s) of 240 x 240 px"``."""
        return f"{len(self.z)} slice(s) of {self.y.stop - self.y.start} x {self.x.stop - self.x.start} px"

    def stack(self, source: Source) -> FieldStack:
        """Return the source's pixels over the field as a lazy (Z, H, W) stack (what the library's jobs read)."""
        return FieldStack(self, source)


class FieldStack:
    """A source's pixels over a field, read slice by slice: item ``i`` is reference slice ``field.z[i]``."""

    def __init__(self, field: Field, source: Source) -> None:
        self.field, self.source = field, source
        self.shape = (len(field.z), field.y.stop - field.y.start, field.x.stop - field.x.start)
        self.dtype = source.dtype

    def __getitem__(self, i: int) -> np.ndarray:
        return self.field.read(self.source, self.field.z[i])


def _geometry(layer: Any, physical: bool) -> tuple[np.ndarray, np.ndarray]:
    from napari_emsr._napari.common.layers import LayerError, physical_geometry

    if not (np.allclose(layer.rotate, np.eye(layer.ndim)) and np.allclose(layer.shear, 0)
            and np.allclose(layer.affine.affine_matrix, np.eye(layer.ndim + 1))):  # fmt: skip
        raise LayerError(
            f"layer '{layer.name}' is rotated, sheared or has an affine transform; compare unrotated layers"
        )
    scale, translate = np.array(layer.scale, dtype=float), np.array(layer.translate, dtype=float)
    if physical:
        sizes, shift = physical_geometry(layer.scale, layer.translate, layer.units)
        scale, translate = np.array(sizes, dtype=float), np.array(shift, dtype=float)
    if layer.ndim == 2:
        scale, translate = np.r_[1.0, scale], np.r_[0.0, translate]
    return scale, translate


def _is_physical(layer: Any) -> bool:
    from napari_emsr._napari.common.layers import physical_geometry

    sizes, shift = physical_geometry(layer.scale, layer.translate, layer.units)
    return sizes is not None and None not in sizes and shift is not None


def layer_source(layer: Any, *, physical: bool, label: str | None = None) -> Source:
    """Return a grey-scale 2D or (z, y, x) image layer as a :class:`Source` (``LayerError`` otherwise)."""
    from napari_emsr._napari.common.layers import image_data

    data = image_data(layer)
    scale, translate = _geometry(layer, physical)
    depth, height, width = (1, *data.shape) if data.ndim == 2 else data.shape
    shape = (int(depth), int(height), int(width))

    def read(z: int, rows: slice, cols: slice) -> np.ndarray:
        return np.asarray(data[rows, cols] if data.ndim == 2 else data[z, rows, cols])

    return Source(label or layer.name, shape, scale, translate, read, np.dtype(data.dtype), data.ndim)


def bicubic_source(lr_layer: Any, factor: int, *, physical: bool) -> Source:
    """Bicubic x ``factor`` of ``lr_layer``, placed as Super-resolve places a result (read lazily)."""
    from napari_emsr.resample import bicubic_upsample

    lr = layer_source(lr_layer, physical=physical)
    scale, translate = lr.scale.copy(), lr.translate.copy()
    scale[1:] /= factor
    translate[1:] += -lr.scale[1:] / 2 + scale[1:] / 2
    shape = (lr.shape[0], lr.shape[1] * factor, lr.shape[2] * factor)

    def read(z: int, rows: slice, cols: slice) -> np.ndarray:
        low_rows = slice(rows.start // factor, rows.stop // factor)
        low_cols = slice(cols.start // factor, cols.stop // factor)
        return bicubic_upsample(lr.read(z, low_rows, low_cols), factor)

    return Source(f"bicubic x{factor} ({lr_layer.name})", shape, scale, translate, read, lr.dtype, lr.ndim, factor)


def sources_physical(*layers: Any) -> bool:
    """Whether to place the layers by their sizes in nm (all have them) or by raw scale and translate."""
    return all(_is_physical(layer) for layer in layers if layer is not None)


def bicubic_factor(lr_layer: Any, reference: Source, *, physical: bool) -> int:
    """Return the integer ratio of the LR layer's pixel size to the reference's (``LayerError`` if there is none)."""
    from napari_emsr._napari.common.layers import LayerError

    lr_scale, _ = _geometry(lr_layer, physical)
    ratios = lr_scale[1:] / reference.scale[1:]
    factor = int(round(ratios[0]))
    if factor < 1 or not np.allclose(ratios, factor, rtol=1e-3):
        raise LayerError(
            f"the LR layer '{lr_layer.name}' has pixels {lr_scale[-1]:g} wide, the reference {reference.scale[-1]:g}: "
            f"the ratio {ratios[-1]:.3g} is not a whole number, so its bicubic up-sampling is on another grid"
        )
    return factor


def _shift(reference: Source, source: Source) -> np.ndarray:
    """Whole-pixel offset of ``source``'s pixels from the reference's (``LayerError`` if off the grid)."""
    from napari_emsr._napari.common.layers import LayerError

    if source.ndim != reference.ndim:
        raise LayerError(
            f"'{source.label}' is {source.ndim}D but the reference is {reference.ndim}D; compare a stack with a stack"
        )
    stack = reference.ndim == 3
    for axis in range(3) if stack else range(1, 3):
        if not math.isclose(source.scale[axis], reference.scale[axis], rel_tol=1e-3):
            what = "slice spacing" if axis == 0 else "pixel size"
            raise LayerError(
                f"'{source.label}' has a {what} of {source.scale[axis]:g}, the reference {reference.scale[axis]:g}: "
                f"compare layers at the reference's pixel size (super-resolve the LR layer first, or give it as LR)"
            )
    shift = (reference.translate - source.translate) / reference.scale
    shift[0] = shift[0] if stack else 0.0
    whole = np.round(shift)
    if np.any(np.abs(shift - whole) > _GRID_TOLERANCE):
        off = np.abs(shift - whole).max()
        raise LayerError(
            f"'{source.label}' is not on the reference's pixel grid (its pixels are {off:.2f} px off): the layers "
            "must overlay pixel on pixel"
        )
    return whole.astype(int)


def common_field(reference: Source, sources: list[Source]) -> Field:
    """Return the field of reference pixels that every source covers (``LayerError`` if it is empty)."""
    from napari_emsr._napari.common.layers import LayerError

    low, high = np.zeros(3, dtype=int), np.array(reference.shape)
    shifts = {reference.label: np.zeros(3, dtype=int)}
    for source in sources:
        if source.label in shifts:
            raise LayerError(f"'{source.label}' is chosen twice; choose different layers")
        shift = shifts[source.label] = _shift(reference, source)
        low, high = np.maximum(low, -shift), np.minimum(high, np.array(source.shape) - shift)
    for source in sources:  # a bicubic source: cut at LR pixel edges
        for axis in (1, 2):
            if source.step > 1:
                s, d = source.step, shifts[source.label][axis]
                low[axis] = -(-(low[axis] + d) // s) * s - d
                high[axis] = ((high[axis] + d) // s) * s - d
    if np.any(high - low < np.array([1, 8, 8])):
        raise LayerError(
            "the layers share no field of at least 8 x 8 pixels: check that they overlay (same place, same pixel size)"
        )
    return Field(range(int(low[0]), int(high[0])), slice(int(low[1]), int(high[1])),
                 slice(int(low[2]), int(high[2])), shifts)  # fmt: skip


def whole_stack(source: Source) -> FieldStack:
    """Return all of a source's pixels as a lazy (Z, H, W) stack, read slice by slice."""
    depth, height, width = source.shape
    return Field(range(depth), slice(0, height), slice(0, width), {source.label: np.zeros(3, dtype=int)}).stack(source)


def _shape(layer: Any) -> tuple[int, ...] | None:
    from napari_emsr._napari.common.layers import LayerError, image_data

    try:
        return tuple(int(n) for n in image_data(layer).shape)
    except LayerError:
        return None


def _why_not(shape: tuple[int, ...] | None, lr: tuple[int, ...]) -> str:
    if shape is None or len(shape) != 3:
        return "is not a stack"
    if shape[0] != lr[0]:
        return f"has {shape[0]} slices, the LR {lr[0]}"
    return f"is {shape[1]} x {shape[2]} px, not a whole multiple of the LR's {lr[1]} x {lr[2]}"


def z_plan(lr_layer: Any, layers: list[Any]) -> tuple[list[tuple[Any, int]], str]:
    """Return the ticked layers whose z-consistency against the LR stack is measured (with their factors), and why.

    The sentence says what is measured, and which layers do not qualify (a 2-D LR or layer, one
    slice, other slice counts, pixels that are no whole multiple of the LR's).
    """
    from napari_emsr.metrics import z_scale

    if lr_layer is None:
        stacks = [layer for layer in layers if len(_shape(layer) or ()) == 3]
        text = "Choose an LR layer to measure the z-consistency (flicker) of the stacks against it."
        return [], text if stacks else ""
    lr = _shape(lr_layer)
    if lr is None or len(lr) != 3 or lr[0] < 2:
        return [], f"No z-consistency: the LR '{lr_layer.name}' is a single image (it needs a stack of 2+ slices)."
    found, refused = [], []
    for layer in layers:
        if layer is lr_layer:
            continue
        shape = _shape(layer)
        try:
            found.append((layer, z_scale(shape or (), lr)))
        except ValueError:
            refused.append(f"'{layer.name}' {_why_not(shape, lr)}")
    rule = "a result of the LR has its slices and s times its pixels in y and x"
    if not found:
        why = f": {'; '.join(refused)} ({rule})" if refused else ": tick a result of the LR stack"
        return [], f"No z-consistency against the LR '{lr_layer.name}'{why}."
    scales = sorted({s for _, s in found if s > 1})
    names = [f"'{layer.name}'" for layer, _ in found] + [f"bicubic x{s}" for s in scales]
    text = f"z-consistency against the LR '{lr_layer.name}' (whole stacks): {', '.join(names)}."
    return found, text + (f" Not for {'; '.join(refused)} ({rule})." if refused else "")
