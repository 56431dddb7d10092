"""Where the HR field lies in the LR layer: a rectangle the user sees, and may move, in a shapes layer.

The rectangle lives in a 2D shapes layer with the LR layer's in-plane scale and translate, so its
coordinates are LR pixel coordinates (the LR pixel (y, x) covers y - 0.5 .. y + 0.5) and it is
drawn over every slice. The HR field found (or given) at LR offset (y0, x0), ``h`` x ``w`` LR pixels,
is the rectangle (y0 - 0.5, x0 - 0.5) .. (y0 + h - 0.5, x0 + w - 0.5); the offset used for training
is read back from the rectangle's centre, so moving it (select mode, drag) moves the field and a
stray resize does not change its size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari

__all__ = ["FIELD_LAYER", "draw_field", "field_offset", "find_field_layer", "field_size", "world_offset"]

#: name of the shapes layer holding the HR field
FIELD_LAYER = "HR field (fine-tune)"


def _corners(offset_yx: tuple[int, int], size_yx: tuple[int, int]) -> np.ndarray:
    (y, x), (h, w) = offset_yx, size_yx
    return np.array([[y - 0.5, x - 0.5], [y - 0.5, x + w - 0.5], [y + h - 0.5, x + w - 0.5], [y + h - 0.5, x - 0.5]])


def find_field_layer(viewer: "napari.viewer.Viewer", lr_layer: Any, hr_layer: Any) -> Any:
    """Return the shapes layer with the field of ``hr_layer`` over ``lr_layer`` (None if none, or it is empty)."""
    if FIELD_LAYER not in viewer.layers:
        return None
    layer = viewer.layers[FIELD_LAYER]
    meta = layer.metadata.get("napari_emsr", {})
    if (meta.get("lr_layer"), meta.get("hr_layer")) != (lr_layer.name, hr_layer.name) or len(layer.data) == 0:
        return None
    return layer


def draw_field(
    viewer: "napari.viewer.Viewer",
    lr_layer: Any,
    hr_layer: Any,
    offset_yx: tuple[int, int],
    size_yx: tuple[int, int],
    label: str,
) -> Any:
    """Draw (or redraw) the field of ``hr_layer`` as a rectangle over ``lr_layer``; returns the shapes layer."""
    meta = {"napari_emsr": {"lr_layer": lr_layer.name, "hr_layer": hr_layer.name, "size_yx": [int(v) for v in size_yx]}}
    corners = _corners(offset_yx, size_yx)
    if FIELD_LAYER in viewer.layers:
        layer = viewer.layers[FIELD_LAYER]
        layer.scale, layer.translate = tuple(lr_layer.scale)[-2:], tuple(lr_layer.translate)[-2:]
        layer.metadata = meta
        layer.data = [corners]
        layer.shape_type = ["rectangle"]
        layer.features = {"label": [label]}
    else:
        layer = viewer.add_shapes(
            [corners],
            shape_type="rectangle",
            name=FIELD_LAYER,
            edge_color="#ffd54f",
            edge_width=1.0,  # one LR pixel
            face_color="transparent",
            scale=tuple(lr_layer.scale)[-2:],
            translate=tuple(lr_layer.translate)[-2:],
            units=tuple(lr_layer.units)[-2:],
            features={"label": [label]},
            text={"string": "{label}", "anchor": "upper_left", "color": "#ffd54f", "size": 9},
            metadata=meta,
        )
    layer.refresh()
    return layer


def field_offset(layer: Any) -> tuple[int, int]:
    """Return the (y, x) LR offset of the HR field's first pixel, from the (possibly moved) rectangle's centre."""
    h, w = layer.metadata["napari_emsr"]["size_yx"]
    corners = np.asarray(layer.data[0], dtype=float)[:, -2:]
    centre = (corners.min(axis=0) + corners.max(axis=0)) / 2
    return int(round(centre[0] - h / 2 + 0.5)), int(round(centre[1] - w / 2 + 0.5))


def field_size(hr_shape: tuple[int, ...], scale: int, ratio: float | None) -> tuple[int, int]:
    """Return the HR field's size in LR pixels, as ``prepare_pair`` cuts it (resized to the integer ratio)."""
    sizes = [int(round(n * scale / ratio)) if ratio else int(n) for n in hr_shape[-2:]]
    return sizes[0] // scale, sizes[1] // scale


def world_offset(lr_layer: Any, hr_layer: Any, size_yx: tuple[int, int]) -> tuple[int, int]:
    """Return the LR pixel (y, x) where the HR layer's first pixel edge lies in the world, kept inside the LR."""
    lr_scale, lr_shift = np.asarray(lr_layer.scale[-2:], float), np.asarray(lr_layer.translate[-2:], float)
    hr_scale, hr_shift = np.asarray(hr_layer.scale[-2:], float), np.asarray(hr_layer.translate[-2:], float)
    edge = hr_shift - hr_scale / 2  # world position of the HR field's first pixel edge
    first = np.round((edge - lr_shift) / lr_scale + 0.5).astype(int)
    limit = np.asarray(lr_layer.data.shape[-2:]) - np.asarray(size_yx)
    y, x = np.clip(first, 0, np.maximum(limit, 0))
    return int(y), int(x)
