"""Dock widget "Side by side": LR (bicubic), SR and HR next to each other, in step.

napari's grid mode gives each visible layer a viewbox; all viewboxes share one camera and one
slider, so world position, zoom and slice stay in step by construction. The LR layer is drawn
with Catmull-Rom interpolation (the Keys a = -0.5 bicubic kernel of
:func:`napari_emsr.resample.bicubic_upsample`), i.e. bicubic up-sampling evaluated on screen,
lazily and at any zoom. Turning the grid off (here, or with napari's grid button) restores the
layers' visibility, order and interpolation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_emsr._napari.common.layers import (
    LayerCombo,
    acquired,
    coarsest,
    is_result,
    is_uncertainty,
    layer_pixel_size,
    newest_result,
)

if TYPE_CHECKING:
    import napari

__all__ = ["SideBySideWidget", "compare", "end_comparison", "find_hr", "find_sr", "orthogonal_view", "VIEWS"]

def _same(a: Any, b: Any) -> bool:
    """Whether two layer references are the same layer (``==``: napari may hand plugins proxies)."""
    return a is not None and b is not None and a == b


class _Comparison:
    """What :func:`compare` changed in a viewer; turning the grid off puts it back."""

    def __init__(self, viewer: "napari.viewer.Viewer", lr: Any) -> None:
        grid = viewer.canvas.grid
        self.viewer = viewer
        self.order = list(viewer.layers)
        self.visible = [(layer, layer.visible) for layer in viewer.layers]
        self.lr, self.lr_interpolation = lr, lr.interpolation2d
        self.grid = (grid.stride, grid.shape)
        # a closure (held strongly by the emitter, unlike a bound method) keeps this state alive
        self.callback = lambda event=None: self.restore() if not self.viewer.canvas.grid.enabled else None
        grid.events.enabled.connect(self.callback)

    def restore(self) -> None:
        layers, grid = self.viewer.layers, self.viewer.canvas.grid
        grid.events.enabled.disconnect(self.callback)
        for target, layer in enumerate(kept for kept in self.order if kept in layers):
            layers.move(layers.index(layer), target)
        for layer, visible in self.visible:
            if layer in layers:
                layer.visible = visible
        if self.lr in layers:
            self.lr.interpolation2d = self.lr_interpolation
        grid.stride, grid.shape = self.grid


def compare(viewer: "napari.viewer.Viewer", lr: Any, sr: Any, hr: Any = None) -> None:
    """Show ``lr`` (bicubic), ``sr`` and ``hr`` (optional) side by side, left to right, in step.

    Turning the grid off (:func:`end_comparison`, or napari's grid button) restores the view.
    """
    chosen = [layer for layer in (lr, sr, hr) if layer is not None]
    if any(_same(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1 :]):
        raise ValueError("choose different layers for LR, SR and HR")
    end_comparison(viewer)
    _Comparison(viewer, lr)
    for layer in viewer.layers:
        layer.visible = any(_same(layer, c) for c in chosen)
    for layer in chosen:  # to the top, in this order: grid cells follow the layer order
        viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))
    lr.interpolation2d = "catrom"
    grid = viewer.canvas.grid
    grid.stride, grid.shape, grid.enabled = 1, (1, len(chosen)), True
    if hr is not None:
        _fit(viewer, hr)


def end_comparison(viewer: "napari.viewer.Viewer") -> bool:
    """Back to the overlay: turn the grid off, which undoes :func:`compare` (False if it was off)."""
    grid = viewer.canvas.grid
    was_on = grid.enabled
    grid.enabled = False
    return was_on


def _fit(viewer: "napari.viewer.Viewer", layer: Any) -> None:
    """Centre the camera on ``layer`` and zoom so that it fills a grid viewbox."""
    extent = np.asarray(layer.extent.world, dtype=float)[:, -2:]
    size = np.maximum(extent[1] - extent[0], 1e-9)
    height, width = viewer.canvas.viewbox_size(viewer.layers)
    viewer.scene.camera.center = (*tuple(viewer.scene.camera.center)[:-2], *(extent.mean(axis=0)))
    viewer.scene.camera.zoom = 0.95 * min(height / size[0], width / size[1])


def _plane_extent(layer: Any) -> np.ndarray:
    return np.asarray(layer.extent.world, dtype=float)[:, -2:]


def find_hr(viewer: "napari.viewer.Viewer", lr: Any, sr: Any = None) -> Any:
    """Return an image layer with finer pixels than ``lr`` whose field overlaps it (the finest), or None.

    Layers whose pixel size is unknown are only compared with an ``lr`` whose size is unknown too.
    """
    from napari.layers import Image

    if lr is None:
        return None
    lr_box, lr_pixel = _plane_extent(lr), float(np.min(np.asarray(lr.scale)[-2:]))
    lr_known = layer_pixel_size(lr) is not None
    candidates = []
    for layer in viewer.layers:
        if not isinstance(layer, Image) or _same(layer, lr) or _same(layer, sr) or layer.rgb or is_result(layer):
            continue
        if is_uncertainty(layer):
            continue
        if (layer_pixel_size(layer) is not None) != lr_known:
            continue
        box = _plane_extent(layer)
        overlaps = np.all(np.minimum(box[1], lr_box[1]) > np.maximum(box[0], lr_box[0]))
        pixel = float(np.min(np.asarray(layer.scale)[-2:]))
        if overlaps and pixel < lr_pixel:
            candidates.append((pixel, layer))
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def find_sr(viewer: "napari.viewer.Viewer", lr: Any) -> Any:
    """Return the newest Super-resolve result made from ``lr``, or None."""
    if lr is None:
        return None
    made = [
        layer for layer in viewer.layers
        if is_result(layer) and (layer.metadata.get("napari_emsr") or {}).get("source_layer") == lr.name
    ]  # fmt: skip
    return made[-1] if made else None


class SideBySideWidget(QWidget):
    """Pick LR, SR and (optionally) HR layers; one click shows them side by side."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        # LR: the coarsest acquired layer (or the user's selection); SR and HR follow from it (guess)
        self.lr = LayerCombo(viewer, prefer=lambda layers: coarsest(acquired(layers)), maps=False)
        self.sr = LayerCombo(viewer, prefer=newest_result, accepts=is_result, maps=False)
        self.hr = LayerCombo(viewer, none_text="(none)", accepts=False, maps=False)
        self.show_button = QPushButton("Side by side")
        self.overlay_button = QPushButton("Back to overlay")
        self.status = QLabel(wordWrap=True)  # type: ignore[call-overload]
        form = QFormLayout()
        form.addRow("LR (bicubic)", self.lr.native)
        form.addRow("SR", self.sr.native)
        form.addRow("HR", self.hr.native)
        row = QHBoxLayout()
        row.addWidget(self.show_button)
        row.addWidget(self.overlay_button)
        # the plane shown in every grid cell: xz / yz cut the stack at the cursor, all layers alike
        self.view_buttons = {name: QPushButton(name) for name in VIEWS}
        views = QHBoxLayout()
        views.addWidget(QLabel("View"))
        for name, button in self.view_buttons.items():
            button.setToolTip(VIEW_TIPS[name])
            button.clicked.connect(lambda _=False, name=name: self.show_view(name))
            views.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addLayout(views)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.lr.changed.connect(self.guess)
        self.show_button.clicked.connect(self.show_side_by_side)
        self.overlay_button.clicked.connect(self.back_to_overlay)
        self.guess()

    def guess(self, *_: Any) -> None:
        """Fill SR and HR from the LR choice: its newest result, and a finer layer that overlaps it."""
        lr = self.lr.layer()
        sr = find_sr(self.viewer, lr)
        if sr is not None:
            self.sr.set_layer(sr)
        self.hr.set_layer(find_hr(self.viewer, lr, self.sr.layer()))

    def show_side_by_side(self) -> None:
        from napari.utils.notifications import show_error

        lr, sr, hr = self.lr.layer(), self.sr.layer(), self.hr.layer()
        try:
            if lr is None or sr is None:
                raise ValueError("choose an LR and an SR layer (run Super-resolve first)")
            compare(self.viewer, lr, sr, hr)
        except ValueError as exc:
            show_error(f"Side by side: {exc}")
            self.status.setText(str(exc))
            return
        names = ", ".join(f"'{layer.name}'" for layer in (lr, sr, hr) if layer is not None)
        self.status.setText(f"Left to right: {names}. Zoom, pan and slice move them together.")

    def show_view(self, name: str) -> None:
        """Show the ``"xy"``, ``"xz"`` or ``"yz"`` plane in every cell, through the cursor (:func:`orthogonal_view`)."""
        try:
            orthogonal_view(self.viewer, name)
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        along = VIEWS[name][1]
        self.status.setText(f"{name} planes of every layer, at the same {along}: the slider moves them together.")

    def back_to_overlay(self) -> None:
        self.status.setText("" if end_comparison(self.viewer) else "The grid is already off.")


#: view -> (the dims order that shows it for (z, y, x) data, the axis the slider then moves along)
VIEWS = {"xy": ((0, 1, 2), "z"), "xz": ((1, 0, 2), "y"), "yz": ((2, 0, 1), "x")}
VIEW_TIPS = {
    "xy": "the slices as acquired",
    "xz": "z against x at the cursor's y: where slice-wise processing shows flicker and the LR its z smear",
    "yz": "z against y at the cursor's x",
}


def orthogonal_view(viewer: "napari.viewer.Viewer", name: str) -> None:
    """Show the ``name`` plane (``"xy"``, ``"xz"``, ``"yz"``) of every layer, cut where the mouse cursor is.

    All layers share napari's dims, so in the side-by-side grid LR (interpolated), SR and HR show the
    same plane and move together. The plane goes through the cursor's world position when the
    cursor is over the data, else through the current point.
    """
    order, _ = VIEWS[name]
    if viewer.dims.ndim != 3:
        raise ValueError(f"the {name} view needs (z, y, x) stacks; the viewer has {viewer.dims.ndim} dimensions")
    cursor = np.asarray(viewer.cursor.position, dtype=float)
    if name != "xy" and len(cursor) == 3 and np.isfinite(cursor).all():
        axis = order[0]
        low, high = viewer.dims.range[axis][:2]
        if low <= cursor[axis] <= high:
            viewer.dims.set_point(axis, float(cursor[axis]))
    viewer.dims.order = order
    viewer.reset_view()


def layers_in_grid_order(viewer: "napari.viewer.Viewer") -> Sequence[Any]:
    """Return the visible layers by grid cell, left to right then top to bottom (for checks and tests)."""
    grid, layers = viewer.canvas.grid, viewer.layers
    cells = [(grid.position(i, layers), layer) for i, layer in enumerate(layers) if layer.visible]
    return [layer for _, layer in sorted(cells, key=lambda c: c[0])]
