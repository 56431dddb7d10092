"""Image layers for the napari-emsr widgets: choosing one, checking it, reading its geometry.

napari places a layer in the world with ``scale``, ``translate`` (and ``rotate``, ``shear``,
``affine``); napari-emsr reads the pixel size from ``scale`` and ``units`` and gives a result the
transform that puts its pixel centres where they lie inside the input's pixels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from magicgui.widgets import ComboBox
from qtpy.QtWidgets import QComboBox

if TYPE_CHECKING:
    import napari

__all__ = [
    "LayerCombo",
    "LayerError",
    "acquired",
    "coarsest",
    "finest",
    "is_result",
    "is_uncertainty",
    "newest_result",
    "matching_input",
    "plane_pixel_size",
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


def is_uncertainty(layer: Any) -> bool:
    """Whether ``layer`` is a napari-emsr uncertainty map (its metadata's ``kind`` is ``"uncertainty"``)."""
    return (layer.metadata.get("napari_emsr") or {}).get("kind") == "uncertainty"


def is_result(layer: Any) -> bool:
    """Whether ``layer`` is a napari-emsr result (a super-resolved layer names its source layer; not a map)."""
    return bool((layer.metadata.get("napari_emsr") or {}).get("source_layer")) and not is_uncertainty(layer)


def acquired(layers: Sequence[Any]) -> list[Any]:
    """Return the layers that are neither napari-emsr results nor uncertainty maps (what was imaged), else all."""
    found = [layer for layer in layers if not is_result(layer) and not is_uncertainty(layer)]
    return found or list(layers)


def newest_result(layers: Sequence[Any]) -> Any:
    """Return the most recently added napari-emsr result (top of the layer list), else the top layer; None if none."""
    results = [layer for layer in layers if is_result(layer)]
    return (results or list(layers) or [None])[-1]


def plane_pixel_size(layer: Any) -> float | None:
    """Return the layer's in-plane pixel size in nm (the larger of y and x), or None when unknown."""
    sizes = layer_pixel_size(layer)
    known = [float(v) for v in (sizes or ())[-2:] if v is not None]
    return max(known) if known else None


def _coarseness(layer: Any) -> tuple[int, float]:
    """Sort key, coarsest last: known pixel sizes by size; unknown ones before them, by fewer pixels."""
    size = plane_pixel_size(layer)
    if size is not None:
        return (1, size)
    shape = getattr(layer.data[0] if layer.multiscale else layer.data, "shape", (1, 1))
    return (0, -float(np.prod(shape[-2:])))


def coarsest(layers: Sequence[Any]) -> Any:
    """Return the image layer with the largest pixels (else, all sizes unknown, the fewest pixels); None if none."""
    return max(layers, key=_coarseness, default=None)


def finest(layers: Sequence[Any]) -> Any:
    """Return the image layer with the smallest known pixels (else, all unknown, the most pixels); None if none."""
    known = [layer for layer in layers if plane_pixel_size(layer) is not None]
    if known:
        return min(known, key=lambda layer: plane_pixel_size(layer) or 0.0)
    return min(layers, key=_coarseness, default=None)


def matching_input(layers: Sequence[Any], model: Any) -> Any:
    """Return the layer whose pixel size suits ``model``'s input best, else the coarsest (see :func:`coarsest`).

    A layer suits the model when its pixel size lies in the model's measured range of valid input
    pixel sizes (``valid_input_pixel_size_nm``; else within 25 % of ``input_pixel_size_nm``);
    among those, the closest to ``input_pixel_size_nm`` (on a log scale) wins.
    """
    meta = getattr(model, "metadata", None)
    nominal = getattr(meta, "input_pixel_size_nm", None)
    valid = getattr(meta, "valid_input_pixel_size_nm", None)
    if nominal is not None and valid is None:
        valid = (nominal / 1.25, nominal * 1.25)
    suited = []
    for layer in layers:
        size = plane_pixel_size(layer)
        if size is not None and valid is not None and valid[0] <= size <= valid[1]:
            suited.append((abs(math.log(size / nominal)) if nominal else 0.0, layer))
    if suited:
        return min(suited, key=lambda s: s[0])[1]
    return coarsest(layers)


_UNSET = object()  # no pick yet


class LayerCombo(FollowsLayers, ComboBox):
    """A magicgui combo box of the viewer's image layers: a preferred default, then the user's choice.

    Until the user picks a layer in it (or :meth:`set_layer` is called), it shows the layer the
    user last selected in napari's layer list (when ``accepts`` takes it), else the layer
    ``prefer`` names among the image layers (by default the coarsest: the LR of an LR / HR pair).
    A layer becoming active only because it was just added does not count as a selection (until
    control returns to the event loop): opening the sample pair leaves an LR-preferring combo on
    the LR. Once picked, the choice stays while
    that layer exists, through renames. Add ``.native`` to a Qt layout.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    none_text : str, optional
        Offer a 'none' entry with this text (the default then is none, unless ``prefer`` names a layer).
    prefer : callable, optional
        ``prefer(image_layers) -> layer or None``: the default choice. Default :func:`coarsest`
        (or none when ``none_text`` is given).
    accepts : callable or bool, optional
        ``accepts(layer) -> bool``: whether a layer the user selects in the layer list becomes the
        choice (True: any image layer; False: the selection is not followed). Default True.
    maps : bool, optional
        Whether uncertainty maps (:func:`is_uncertainty`) are listed; False for an input to compute
        on. Default True.
    """

    def __init__(
        self,
        viewer: "napari.viewer.Viewer",
        *,
        none_text: str | None = None,
        prefer: Callable[[list[Any]], Any] | None = None,
        accepts: Callable[[Any], bool] | bool = True,
        maps: bool = True,
    ) -> None:
        if prefer is None:
            prefer = coarsest if none_text is None else (lambda layers: None)
        self.viewer = viewer
        self.none_text = none_text
        self.prefer = prefer
        self.accepts = accepts
        self.maps = maps
        self._picked: Any = _UNSET  # the layer the user picked here (or set_layer gave; None: the 'none' entry)
        self._followed: Any = None  # the layer the user last selected in the layer list
        self._inserted: Any = None  # the layer just added (napari makes it active: not a selection)
        self._updating = False
        super().__init__(choices=self._choices, nullable=none_text is not None)
        if none_text is not None:
            self.null_string = none_text
        self.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.native.setMinimumContentsLength(12)
        self.native.activated.connect(self._user_picked)  # emitted for the user's picks only
        viewer.layers.selection.events.active.connect(self._on_active)
        self._follow_layers(viewer)

    def _images(self) -> list[Any]:
        layers = [layer for layer in self.viewer.layers if _is_image(layer)]
        return layers if self.maps else [layer for layer in layers if not is_uncertainty(layer)]

    def _choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self._images()]

    def _alive(self, layer: Any) -> bool:
        return layer is not None and layer in self.viewer.layers

    def _has_pick(self) -> bool:
        return (self._picked is None and self.none_text is not None) or self._alive(self._picked)

    def _wanted(self) -> Any:
        if self._has_pick():
            return self._picked
        if self._alive(self._followed):
            return self._followed
        images = self._images()
        return self.prefer(images) if images else None

    def _user_picked(self, *_: Any) -> None:
        self._picked = self.value
        self._followed = None

    def _on_active(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is None or not _is_image(layer) or layer is self._inserted or layer not in self._images():
            return
        if self._has_pick() or self.accepts is False:
            return
        if self.accepts is not True and not self.accepts(layer):
            return
        self._followed = layer
        self.refresh()

    def _on_layers_changed(self, event: Any = None) -> None:
        if getattr(event, "type", "") == "inserted":
            # napari makes an added layer active (several events, within the same call): not the user's
            # selection. Forgotten once control is back in the event loop, so a later click on it counts.
            from qtpy.QtCore import QTimer

            self._inserted = getattr(event, "value", None)
            QTimer.singleShot(0, self._forget_inserted)
        super()._on_layers_changed(event)

    def _forget_inserted(self) -> None:
        self._inserted = None

    def refresh(self, event: Any = None) -> None:
        """Rebuild the list (new, removed, renamed layers) and show the wanted layer (see the class)."""
        if self._updating:
            return
        self._updating = True
        try:
            wanted, before = self._wanted(), self.value
            with self.changed.blocked():
                self.reset_choices()
                if wanted in self.choices:
                    self.value = wanted
            if self.value is not before or event is not None:  # a rename changes the text only: say so too
                self.changed.emit(self.value)
        finally:
            self._updating = False

    def layer(self) -> Any:
        """Return the chosen image layer, or None."""
        value = self.value
        return value if self._alive(value) else None

    def set_layer(self, layer: Any) -> None:
        """Choose ``layer`` (a layer or its name; None: the 'none' entry) as if the user had picked it."""
        if isinstance(layer, str):
            layer = None if layer == self.none_text else self.viewer.layers[layer]
        self._picked, self._followed = layer, None
        self.refresh()

    def prefer_again(self, *_: Any) -> None:
        """Forget the user's pick and selection: show the preferred layer (e.g. after the model changed)."""
        if not self._has_pick():
            self._followed = None
            self.refresh()

    def names(self) -> list[str]:
        """Return the entries' texts, in order (the 'none' entry first, when there is one)."""
        return [self.native.itemText(i) for i in range(self.native.count())]


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
