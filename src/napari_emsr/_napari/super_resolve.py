"""Dock widget "Super-resolve": an LR image layer in, a super-resolved layer out, in the background.

A thin adapter over :func:`napari_emsr.iter_super_resolve`: the scope becomes the engine's
input (a lazily sliced dask array for the current slice) and the options' ``region`` and
``first_slice``; its events drive the run panel's progress bar, and their payloads (the
:class:`~napari_emsr.predict.PlanSummary`, each :class:`~napari_emsr.predict.SliceDone`) fill the
result layer slice by slice, the slice on screen first.
The result is named after its input and placed (scale / s, translate) to overlay it exactly.
With "Uncertainty map" ticked the run passes ``uncertainty=True``: a second layer, the per-pixel
spread of the 8-fold self-ensemble (:mod:`napari_emsr.predict.uncertainty`), fills in beside it,
placed the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generator

import numpy as np
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QPushButton, QVBoxLayout, QWidget

from napari_emsr._napari.common.engine_options import EngineOptions, engine_pixel_size
from napari_emsr._napari.common.layers import (
    LayerCombo,
    LayerError,
    acquired,
    current_slice,
    image_data,
    layer_pixel_size,
    matching_input,
    overlay_transform,
    region_in_view,
)
from napari_emsr._napari.common.run_panel import RunPanel, format_seconds, gui_message

if TYPE_CHECKING:
    import napari
    from napari_emsr.events import Event
    from napari_emsr.predict import PlanSummary

__all__ = ["SuperResolveWidget", "SCOPES_2D", "SCOPES_3D"]

#: scope label -> (whole stack, region in view)
SCOPES_3D = {
    "Current slice": (False, False),
    "Current slice, region in view": (False, True),
    "Whole stack (current slice first)": (True, False),
    "Whole stack, region in view": (True, True),
}
SCOPES_2D = {"Whole image": (True, False), "Region in view": (True, True)}
UNCERTAINTY_TEXT = "Uncertainty map (spread of the 8 flips / rotations; implies self-ensemble, 8x slower)"
#: what the uncertainty map is, in a few words (the status line, the layer's metadata)
UNCERTAINTY_WHAT = "where the 8 flips / rotations disagree (the network guesses there); not an error bar"
UNCERTAINTY_TIP = (
    "A second layer: per pixel, the standard deviation of the 8 flipped / rotated predictions (output grey "
    "levels). Bright where the network's answer depends on how the slice is turned, i.e. where it guesses. "
    "Not an error bar or a probability: it misses errors all 8 predictions share. Turns self-ensemble on."
)


@dataclass
class _Job:
    """One run: its input layer, where the output starts (input pixels), its result layer (and map)."""

    layer: Any
    offset: list[int]
    suffix: str
    uncertainty: bool = False  # with an uncertainty map: "done" brings (result, map)
    started: float = field(default_factory=time.perf_counter)
    plan: PlanSummary | None = None
    output: Any = None
    spread: Any = None  # the uncertainty map's layer (with the map ticked)
    model: dict[str, Any] = field(default_factory=dict)  # which model: its file and zoo name (if shipped)


class SuperResolveWidget(QWidget):
    """Super-resolve the current slice, the whole stack or the region in view of an image layer."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.engine = EngineOptions()
        self.uncertainty = QCheckBox(UNCERTAINTY_TEXT)
        self.uncertainty.setToolTip(UNCERTAINTY_TIP)
        # the layer whose pixel size suits the model (else the coarsest), then the user's selection
        self.layer_combo = LayerCombo(
            viewer, prefer=lambda layers: matching_input(acquired(layers), self._model()), maps=False
        )
        self.scope = QComboBox()
        self.run_panel = RunPanel("Super-resolve", run_text="Super-resolve")
        self.compare_button = QPushButton("Side by side", enabled=False)  # type: ignore[call-overload]
        self.compare_button.setToolTip("LR (bicubic), this result and an overlapping HR layer, side by side")
        self.result_layer: Any = None
        self.uncertainty_layer: Any = None
        self._job: _Job | None = None
        form = QFormLayout()
        form.addRow("Image", self.layer_combo.native)
        form.addRow("Scope", self.scope)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.engine)
        layout.addWidget(self.uncertainty)
        layout.addWidget(self.run_panel)
        layout.addWidget(self.compare_button)
        layout.addStretch(1)
        self.layer_combo.changed.connect(self._update_scopes)
        self.engine.source.changed.connect(self.layer_combo.prefer_again)
        self.uncertainty.toggled.connect(self._uncertainty_toggled)
        self.run_panel.run_button.clicked.connect(self.run)
        self.compare_button.clicked.connect(self.side_by_side)
        self._update_scopes()

    def _model(self) -> Any:
        """Return the chosen model, or None when none is usable (the engine form says why)."""
        try:
            return self.engine.model()
        except (ValueError, OSError):
            return None

    def _uncertainty_toggled(self, on: bool) -> None:
        self.engine.imply_self_ensemble("on: the uncertainty map is the spread of the self-ensemble" if on else None)

    def _update_scopes(self, *_: Any) -> None:
        layer = self.layer_combo.layer()
        try:
            scopes = SCOPES_3D if image_data(layer).ndim == 3 else SCOPES_2D
        except LayerError:
            scopes = SCOPES_3D
        current = self.scope.currentText()
        self.scope.clear()
        for label, value in scopes.items():
            self.scope.addItem(label, value)
        if current in scopes:
            self.scope.setCurrentText(current)

    # -- running ------------------------------------------------------------------------------
    def run(self) -> None:
        """Check the choices, then start the engine in a worker (problems become notifications)."""
        from napari.utils.notifications import show_error

        if self.run_panel.running:
            return
        try:
            self._job, make_events = self._prepare()
        except (ValueError, OSError) as exc:  # LayerError, ModelFileError and bad options are ValueErrors
            message = gui_message(exc)
            show_error(f"Super-resolve: {message}")
            self.run_panel.status.setText(f"Not started: {message}")
            return
        self.run_panel.start(make_events, self._on_event, self._on_end)

    def _prepare(self) -> tuple[_Job, Callable[[], Generator[Any, None, None]]]:
        from napari_emsr import iter_super_resolve

        layer = self.layer_combo.layer()
        data = image_data(layer)
        model = self.engine.model()
        whole, in_view = self.scope.currentData() or (True, False)
        chosen: dict[str, Any] = {"pixel_size": engine_pixel_size(layer_pixel_size(layer))}
        offset, suffix, volume = [0] * data.ndim, "", data
        if data.ndim == 3 and not whole:
            z = current_slice(self.viewer, layer)
            volume, offset[0], suffix = data[z : z + 1], z, f" (slice {z})"
        elif data.ndim == 3:
            try:  # the slice on screen first, as a preview
                chosen["first_slice"] = current_slice(self.viewer, layer)
            except LayerError:  # 3D view, other axes on screen, or off the stack: plain order
                pass
        if in_view:
            rows, cols = region_in_view(self.viewer, layer)
            chosen["region"] = (rows, cols)
            offset[-2:] = [rows.start, cols.start]
            suffix += f" (region y {rows.start}:{rows.stop}, x {cols.start}:{cols.stop})"
        options = self.engine.options(**chosen)
        path, shipped = self.engine.model_path(), self.engine.zoo_model()
        used = {"model_file": str(path) if path is not None else None, "zoo_model": shipped.name if shipped else None}
        job = _Job(layer, offset, suffix, uncertainty=self.uncertainty.isChecked(), model=used)
        uncertainty = True if job.uncertainty else None
        return job, lambda: iter_super_resolve(volume, model, uncertainty=uncertainty, options=options)

    def _on_event(self, event: Event) -> None:
        job = self._job
        assert job is not None  # events only come while a job runs
        if event.kind == "start":
            job.plan = plan = event.payload
            exact = "exact" if plan.exact else "approximate"
            self.run_panel.status.setText(
                f"Running on {plan.device}: {list(plan.input_shape)} -> {list(plan.output_shape)}, tile {plan.tile}, "
                f"halo {plan.halo} ({exact}), {plan.tiles_per_slice} tile(s) per slice"
                + (", self-ensemble" if plan.self_ensemble else "")
            )
        elif event.kind == "slice":
            done = event.payload
            if job.output is None:
                job.output = self._add_result(job)
            _fill(job.output, done.index, done.image)
            if done.spread is not None:
                if job.spread is None:
                    job.spread = self._add_uncertainty(job, done.spread)
                _fill(job.spread, done.index, done.spread)
        elif event.kind == "done" and job.output is not None:
            result, spread = event.payload if job.uncertainty else (event.payload, None)
            job.output.data = result
            if job.spread is not None:
                job.spread.data = spread

    def _add_result(self, job: _Job) -> Any:
        """Return the result layer, empty (the first finished slice is filled in next), placed over its input."""
        plan, layer = job.plan, job.layer
        assert plan is not None  # the "start" event came first
        return self.viewer.add_image(
            np.zeros(plan.output_shape, dtype=plan.dtype),
            name=_name(job, ""),
            contrast_limits=layer.contrast_limits,
            colormap=layer.colormap,
            axis_labels=layer.axis_labels,
            metadata={"napari_emsr": _source(job)},
            **overlay_transform(layer, plan.scale, job.offset),
        )

    def _add_uncertainty(self, job: _Job, first: np.ndarray) -> Any:
        """Return the uncertainty map's layer, empty, placed as the result; contrast 0 to the first slice's 99.5 %."""
        plan, layer = job.plan, job.layer
        assert plan is not None  # the "start" event came first
        high = float(np.percentile(first, 99.5)) or float(first.max()) or 1.0  # an all-zero slice: any range
        return self.viewer.add_image(
            np.zeros(plan.output_shape, dtype=first.dtype),
            name=_name(job, " uncertainty"),
            contrast_limits=(0.0, high),
            colormap="magma",
            axis_labels=layer.axis_labels,
            metadata={"napari_emsr": {**_source(job), "kind": "uncertainty", "what": UNCERTAINTY_WHAT}},
            **overlay_transform(layer, plan.scale, job.offset),
        )

    def _on_end(self, outcome: str, error: BaseException | None) -> None:
        job, self._job = self._job, None
        if outcome != "done":
            for made in (job.output, job.spread) if job is not None else ():
                if made is not None and made in self.viewer.layers:
                    self.viewer.layers.remove(made)
            return
        assert job is not None and job.plan is not None  # a run that is done was started
        self.result_layer, self.uncertainty_layer = job.output, job.spread
        self.compare_button.setEnabled(True)
        seconds = format_seconds(time.perf_counter() - job.started)
        note = "" if job.plan.trained else " Random weights: this is NOT a super-resolution result."
        if job.spread is not None:
            note = f" Uncertainty map '{job.spread.name}': {UNCERTAINTY_WHAT}.{note}"
        self.run_panel.status.setText(f"Done in {seconds}: '{job.output.name}' {job.output.data.shape}.{note}")

    def cancel(self) -> None:
        """Stop the run between two tiles; its result layer (and uncertainty map) is removed."""
        self.run_panel.cancel()

    def side_by_side(self) -> None:
        """LR (bicubic), the last result and an overlapping HR layer side by side."""
        from napari.utils.notifications import show_error

        from napari_emsr._napari.side_by_side import compare, find_hr

        result = self.result_layer
        source = (result.metadata.get("napari_emsr") or {}).get("source_layer") if result is not None else None
        if result is None or result not in self.viewer.layers or source not in self.viewer.layers:
            show_error("Side by side: the last result or its input layer is gone; run Super-resolve again")
            return
        lr = self.viewer.layers[source]
        compare(self.viewer, lr, result, find_hr(self.viewer, lr, result))


def _name(job: _Job, what: str) -> str:
    """Return a result layer's name: ``<input> SR x3<what><scope>``, and "[random weights]" for an untrained model."""
    assert job.plan is not None  # the "start" event came first
    trained = "" if job.plan.trained else " [random weights]"
    return f"{job.layer.name} SR x{job.plan.scale}{what}{job.suffix}{trained}"


def _source(job: _Job) -> dict[str, Any]:
    """Return a result layer's ``napari_emsr`` metadata: its source layer, the model, the plan."""
    plan = job.plan
    assert plan is not None  # the "start" event came first
    return {"source_layer": job.layer.name, "trained": plan.trained, "scale": plan.scale, **job.model,
            "plan": plan.to_dict()}  # fmt: skip


def _fill(layer: Any, index: int | None, plane: np.ndarray) -> None:
    """Put a finished slice (``index``; None: the whole 2D image) into ``layer`` and redraw it."""
    if index is None:
        layer.data[...] = plane
    else:
        layer.data[index] = plane
    layer.refresh()
