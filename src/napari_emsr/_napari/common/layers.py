"""Image layers for the napari-emsr widgets: choosing one, checking it, reading its geometry.

napari places a layer in the world with ``scale``, ``translate`` (and ``rotate``, ``shear``,
``affine``); napari-emsr reads the pixel size from ``scale`` and ``units`` and gives a result the
transform that puts its pixel centres where they lie inside the input's pixels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from qtpy.QtWidgets import QComboBox

if TYPE_CHECKING:
    import napari

__all__ = [
    "LayerCombo",
    "LayerError",
    "image_data",
    "layer_pixel_size",
    "in_plane_pixel_size",
    "physical_geometry",
    "overlay_transform",
    "current_slice",
    "region_in_view",
]


class LayerError(ValueError):
    """A layer (or the view of it) cannot be used; the message says what to do."""


def _is_image(layer: Any) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image)


class FollowsLayers:
    """Mixin for widgets listing the viewer's layers.

    Their ``refresh(event=None)`` runs on every addition, removal, move and rename. Bound methods
    are connected, so napari drops them with the widget.
    """

    def refresh(self, event: Any = None) -> None:
        """Bring the widget up to date with the viewer's layers (each widget defines how)."""
        raise NotImplementedError

    def _follow_layers(self, viewer: "napari.viewer.Viewer") -> None:
        events = viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved, events.reordered):
            emitter.connect(self._on_layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def _on_layers_changed(self, event: Any = None) -> None:
        value = getattr(event, "value", None)
        if event is not None and getattr(event, "type", "") == "inserted" and value is not None:
            value.events.name.connect(self.refresh)
        self.refresh()


class LayerCombo(FollowsLayers, QComboBox):
    """A combo box of the viewer's image layers that follows additions, removals and renames.

    It keeps its choice while that layer exists; otherwise it takes the active layer (if it is an
    image) or the first image layer.
    """

    def __init__(self, viewer: "napari.viewer.Viewer", *, none_text: str | None = None, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.none_text = none_text
        self._chosen: Any = None  # the layer itself, so that a renamed choice stays chosen
        self.currentTextChanged.connect(self._remember)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self._follow_layers(viewer)

    def _remember(self, *_: Any) -> None:
        self._chosen = self.layer()

    def refresh(self, event: Any = None) -> None:
        """Rebuild the list of image layers, keeping the current choice when it still exists."""
        current = self.currentText()
        if self._chosen is not None and self._chosen in self.viewer.layers:
            current = self._chosen.name
        names = [layer.name for layer in self.viewer.layers if _is_image(layer)]
        self.blockSignals(True)
        self.clear()
        if self.none_text is not None:
            self.addItem(self.none_text)
        self.addItems(names)
        active = self.viewer.layers.selection.active
        if current in names or (current and current == self.none_text):
            self.setCurrentText(current)
        elif active is not None and active.name in names and self.none_text is None:
            self.setCurrentText(active.name)
        self.blockSignals(False)
        if self.currentText() != current:
            self.currentTextChanged.emit(self.currentText())
        self._chosen = self.layer()

    def layer(self) -> Any:
        """Return the chosen image layer, or None."""
        name = self.currentText()
        if not name or name == self.none_text or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name]

    def set_layer(self, layer: Any) -> None:
        """Choose ``layer`` (None: the 'none' entry, if there is one)."""
        self.setCurrentText(self.none_text if layer is None else layer.name)


def image_data(layer: Any) -> Any:
    """Return the (z, y, x) or (y, x) grey-scale data of an image layer (the full-resolution level).

    Raises
    ------
    LayerError
        If ``layer`` is None, not an image layer, RGB(A), or not 2D / 3D.
    """
    if layer is None:
        raise LayerError(
            "no image layer: open an EM image or stack first (File > Open, or File > Open Sample > "
            "napari-emsr > EM pair (FlyEM FIB-SEM))"
        )
    if not _is_image(layer):
        raise LayerError(f"layer '{layer.name}' is a {type(layer).__name__} layer; choose an image layer")
    if layer.rgb:
        raise LayerError(
            f"layer '{layer.name}' is an RGB(A) image; EMSR works on grey-scale EM: convert it to grey first"
        )
    data = layer.data[0] if layer.multiscale else layer.data
    if data.ndim not in (2, 3):
        raise LayerError(
            f"layer '{layer.name}' has {data.ndim} dimensions {tuple(data.shape)}; napari-emsr super-resolves 2D "
            "images and 3D (z, y, x) stacks: select one channel or time point first (e.g. Layers > Data > Split stack)"
        )
    return data


def layer_pixel_size(layer: Any) -> tuple[float | None, ...] | None:
    """Return the layer's pixel size in nm per axis (see :func:`physical_geometry`); None when unknown."""
    return physical_geometry(layer.scale, layer.translate, layer.units)[0]


def in_plane_pixel_size(layer: Any) -> float | None:
    """Return the layer's (y, x) pixel size in nm, or None when unknown.

    Raises
    ------
    LayerError
        If the pixels are not square (the metrics' rings and the network assume square pixels).
    """
    sizes = layer_pixel_size(layer)
    if sizes is None or None in sizes[-2:]:
        return None
    y, x = (float(v) for v in sizes[-2:] if v is not None)
    if not math.isclose(y, x, rel_tol=0.01):
        raise LayerError(f"layer '{layer.name}' has non-square pixels ({y:g} x {x:g} nm); resample it first")
    return x


def physical_geometry(
    scale: Sequence[float], translate: Sequence[float], units: Sequence[Any]
) -> tuple[tuple[float | None, ...] | None, tuple[float, ...] | None]:
    """(pixel size, translate) in nm per axis from a layer's ``scale``, ``translate`` and ``units``.

    Axes in a length unit are converted to nm (an axis in another unit gets None, and the
    translate None). Layers in napari's default unit ('pixel') whose scale is not all 1 are taken
    to be scaled in nanometres (the EM convention); an all-1 scale in pixels means 'unknown'
    (sizes None, translate in pixels).
    """
    from napari_emsr.io.metadata import unit_to_nm

    scale = [float(v) for v in scale]
    translate = [float(v) for v in translate]
    names = [str(u) for u in units]
    if all(name == "pixel" for name in names):
        if all(v == 1 for v in scale):
            return None, tuple(translate)
        return tuple(scale), tuple(translate)
    factors = [unit_to_nm(name) for name in names]
    sizes = tuple(None if f is None else v * f for v, f in zip(scale, factors, strict=False))
    known = [f for f in factors if f is not None]
    shift = tuple(t * f for t, f in zip(translate, known, strict=False)) if len(known) == len(factors) else None
    return sizes, shift


def overlay_transform(layer: Any, factor: int, offset: Sequence[float]) -> dict[str, Any]:
    """Layer keyword arguments that overlay a result ``factor`` times finer in y and x on ``layer``.

    ``offset`` is where the result's first pixel comes from, in input pixels per axis (e.g. the
    slice index and the region's first row and column). The result's first pixel centre lies at
    ``offset + (1 / factor - 1) / 2`` input pixels in y and x, so its translate is, per in-plane
    axis, ``translate + scale * offset - scale / 2 + scale / (2 * factor)`` (rotate, shear and
    affine are carried over).
    """
    ndim = layer.ndim
    if len(offset) != ndim:
        raise ValueError(f"offset needs {ndim} values, got {len(offset)}")
    shift = np.array(offset, dtype=float)
    shift[-2:] += (1.0 / factor - 1.0) / 2.0
    first_centre = np.asarray(layer.affine.inverse(np.asarray(layer.data_to_world(shift))), dtype=float)
    scale = np.array(layer.scale, dtype=float)
    scale[-2:] /= factor
    return {
        "scale": tuple(scale),
        "translate": tuple(first_centre),
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine,
        "units": layer.units,
    }


def _check_displayed(viewer: "napari.viewer.Viewer", layer: Any, what: str) -> None:
    if viewer.dims.ndisplay != 2:
        raise LayerError(f"{what} needs the 2D view: switch the viewer to 2D (the 2D/3D button) first")
    displayed = list(viewer.dims.displayed)
    offset = viewer.dims.ndim - layer.ndim
    if [d - offset for d in displayed] != [layer.ndim - 2, layer.ndim - 1]:
        raise LayerError(
            f"{what} needs the layer's (y, x) axes on screen; the view shows other axes: "
            "reset the axis order (the Transpose / Roll buttons) first"
        )


def current_slice(viewer: "napari.viewer.Viewer", layer: Any) -> int:
    """Index (z, in the layer's data) of the slice on screen; ValueError if it is outside the stack."""
    _check_displayed(viewer, layer, "the current slice")
    z = int(round(float(layer.world_to_data(viewer.dims.point)[0])))
    if not 0 <= z < image_data(layer).shape[0]:
        raise LayerError(f"the slice on screen lies outside layer '{layer.name}'; move the z slider onto it")
    return z


def region_in_view(viewer: "napari.viewer.Viewer", layer: Any) -> tuple[slice, slice]:
    """Return the (rows, columns) of ``layer``'s pixels that are (partly) visible in the canvas."""
    _check_displayed(viewer, layer, "the region in view")
    height, width = viewer.canvas.viewbox_size(viewer.layers)
    zoom = float(viewer.scene.camera.zoom)
    centre = np.asarray(viewer.scene.camera.center, dtype=float)[-2:]
    axes = list(viewer.dims.displayed)
    corners = []
    for dy in (-0.5, 0.5):
        for dx in (-0.5, 0.5):
            point = np.asarray(viewer.dims.point, dtype=float)
            point[axes] = centre + np.array([dy * height, dx * width]) / zoom
            corners.append(np.asarray(layer.world_to_data(point), dtype=float)[-2:])
    low, high = np.min(corners, axis=0), np.max(corners, axis=0)
    shape = image_data(layer).shape[-2:]
    bounds = []
    for a, b, size in zip(low, high, shape, strict=False):
        start, stop = max(0, math.floor(a + 0.5)), min(int(size), math.floor(b + 0.5) + 1)
        if stop <= start:
            raise LayerError(f"layer '{layer.name}' is not in view; pan or zoom onto it first")
        bounds.append(slice(start, stop))
    return bounds[0], bounds[1]
