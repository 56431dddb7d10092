"""Dock widget "Compare": FRC curves and PSNR / SSIM / mean FRC of layers against a reference layer.

The numbers are ``emsr evaluate``'s: the panel runs the same library job,
:func:`napari_emsr.metrics.iter_compare` (same defaults: data range from the reference's dtype,
mean FRC without a window, resolution from a Hann-windowed FRC at the 1/7 threshold, slices pooled
by :func:`~napari_emsr.metrics.pool_stack`), on the field the layers share in the world (see
:mod:`napari_emsr._napari.compare.data`): the current slice at once, then the whole stack in the
background. An LR layer adds bicubic up-sampling as a baseline. Without a reference the panel
estimates the resolution from two independent halves with
:func:`~napari_emsr.metrics.iter_reference_free`: the even and odd slices of one layer, or two
layers (two acquisitions of one field).

With an LR stack, the whole-stack job then measures the z-consistency (flicker index, xz / yz FRC)
of each ticked layer that is a 3-D result of it, and of bicubic of it, against the LR with
:func:`~napari_emsr.metrics.iter_z_consistency` (whole layers; with or without a reference), in
a second table; the mode line says which layers qualify and why the others do not.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QWidget,
)

from napari_emsr._napari.common.layer_list import LayerChecklist
from napari_emsr._napari.common.layers import (
    LayerCombo,
    LayerError,
    acquired,
    coarsest,
    current_slice,
    finest,
    in_plane_pixel_size,
    is_result,
    plane_pixel_size,
)
from napari_emsr._napari.common.run_panel import RunPanel
from napari_emsr._napari.common.scroll import scrolled
from napari_emsr._napari.compare.data import (
    Field,
    bicubic_factor,
    bicubic_source,
    common_field,
    layer_source,
    sources_physical,
    whole_stack,
    z_plan,
)
from napari_emsr._napari.compare.frc_plot import FRCPlot
from napari_emsr._napari.compare.table import (
    COLUMNS,
    Z_COLUMNS,
    Z_TIPS,
    cell_texts,
    cell_tip,
    fill_table,
    records_of,
    style_table,
    write_csv,
    z_cell_texts,
    z_cell_tip,
    z_records_of,
)
from napari_emsr.events import Event
from napari_emsr.metrics import EvaluationOptions, Scores, iter_compare, iter_reference_free, iter_z_consistency

if TYPE_CHECKING:
    import napari

__all__ = ["CompareWidget"]

_NO_REFERENCE = "(none: reference-free)"
_THRESHOLDS = {"auto (1/7 with a reference, half-bit without)": None, "1/7": "1/7", "half-bit": "half-bit"}
_WINDOWS = {"Hann (default)": "hann", "Tukey": "tukey", "none (paper's convention)": None}


@dataclasses.dataclass(frozen=True)
class _Job:
    """A comparison the panel runs: its library job, and what the panel says about it."""

    field: Field
    pixel_size: float | None
    referenced: bool  # False: reference-free
    events: Callable[[], Generator[Event, None, None]]
    z_lr: str | None = None  # the LR layer whose z-consistency follows the scores (None: none)


_Events = Callable[[], Generator[Event, None, None]]


def _then(scoring: _Events, z: _Events) -> _Events:
    """Return the scoring job, then the z-consistency job, as one run (the scores' "done" becomes "scored")."""

    def events() -> Generator[Event, None, None]:  # runs in the worker thread
        job = scoring()
        try:
            for event in job:
                yield dataclasses.replace(event, kind="scored") if event.kind == "done" else event
        finally:
            job.close()  # on Cancel
        yield from z()

    return events


def _sizes(layers: list[Any]) -> set[float]:
    return {size for layer in acquired(layers) if (size := plane_pixel_size(layer)) is not None}


def _finest_of_a_pair(layers: list[Any]) -> Any:
    """Return the finest acquired layer when acquired layers of two or more pixel sizes are open, else None."""
    return finest([a for a in acquired(layers) if plane_pixel_size(a) is not None]) if len(_sizes(layers)) > 1 else None


def _coarsest_of_a_pair(layers: list[Any]) -> Any:
    """Return the coarsest acquired layer when acquired layers of two or more pixel sizes are open, else None."""
    return coarsest(acquired(layers)) if len(_sizes(layers)) > 1 else None


def _lr_of(layers: list[Any]) -> Any:
    """Return the LR of an LR / HR pair, else the input of the newest napari-emsr result that is open, else None."""
    pair = _coarsest_of_a_pair(layers)
    if pair is not None:
        return pair
    by_name = {layer.name: layer for layer in layers}
    for layer in reversed([layer for layer in layers if is_result(layer)]):
        source = by_name.get(layer.metadata["napari_emsr"]["source_layer"])
        if source is not None and source is not layer and not is_result(source):
            return source
    return None


class CompareWidget(QWidget):
    """Score layers against a reference (or without one) and show FRC curves and a table."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        # reference: the finest acquired layer when layers of several pixel sizes are open (an LR / HR
        # pair), else none; a selected layer becomes it unless it is a result (results are scored)
        self.reference = LayerCombo(viewer, none_text=_NO_REFERENCE, prefer=_finest_of_a_pair,
                                    accepts=lambda layer: not is_result(layer), maps=False)  # fmt: skip
        self.methods = LayerChecklist(viewer)
        self.methods.setToolTip("the layers to score (e.g. Super-resolve results); without a reference: one or two")
        self.lr = LayerCombo(viewer, none_text="(none)", prefer=_lr_of, accepts=False, maps=False)
        self.lr.native.setToolTip("an LR layer: its bicubic up-sampling is scored as a baseline")
        self.threshold = QComboBox()
        for label, value in _THRESHOLDS.items():
            self.threshold.addItem(label, value)
        self.frc_window = QComboBox()
        for label, value in _WINDOWS.items():
            self.frc_window.addItem(label, value)
        self.frc_window.setToolTip("window of the FRC the resolution is read from (the mean FRC never has one)")
        self.whole_stack = QCheckBox("Whole stack too (after the current slice)", checked=True)  # type: ignore[call-overload]
        self.mode = QLabel(wordWrap=True)  # type: ignore[call-overload]
        self.run_panel = RunPanel(
            "Compare", run_text="Compare", cancel_tip="Stop between slices; the current slice's scores stay.",
            cancelling_text="Stopping after this slice...", cancelled_text="Cancelled: the stack was not finished.",
        )  # fmt: skip
        self.plot = FRCPlot(viewer)
        self.table = QTableWidget(0, len(COLUMNS))
        self.z_table = QTableWidget(0, len(Z_COLUMNS))
        self.z_title = QLabel("z-consistency against the LR (whole stacks)")
        self.z_title.setToolTip(
            "slice-wise results can change from slice to slice as the specimen does not (flicker); each stack is\n"
            "down-sampled to the LR grid and compared with the LR stack (see docs/evaluation.md)"
        )
        self.save_plot_button = QPushButton("Save plot...")
        self.save_table_button = QPushButton("Save table...")
        self.records: list[dict[str, Any]] = []
        self.z_records: list[dict[str, Any]] = []
        self.scores: dict[str, Any] = {}
        self._job: _Job | None = None
        self._layout()
        self.reference.changed.connect(self._show_mode)
        self.methods.changed.connect(self._show_mode)
        self.lr.changed.connect(self._show_mode)
        self.whole_stack.toggled.connect(self._show_mode)
        self.run_panel.run_button.clicked.connect(self.run)
        self.save_plot_button.clicked.connect(self._choose_plot_file)
        self.save_table_button.clicked.connect(self._choose_table_file)
        self._show_mode()

    def _layout(self) -> None:
        style_table(self.table, COLUMNS)
        self.table.setMinimumHeight(130)
        self.table.setMaximumHeight(190)
        style_table(self.z_table, Z_COLUMNS, Z_TIPS)
        self.z_table.setMaximumHeight(130)
        self._show_z_table(False)
        form = QFormLayout()
        form.addRow("Reference", self.reference.native)
        form.addRow("Layers", self.methods)
        form.addRow("LR (bicubic)", self.lr.native)
        form.addRow("Threshold", self.threshold)
        form.addRow("Window", self.frc_window)
        form.addRow("", self.whole_stack)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_plot_button)
        buttons.addWidget(self.save_table_button)
        layout = scrolled(self)
        layout.addLayout(form)
        layout.addWidget(self.mode)
        layout.addWidget(self.run_panel)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.table)
        layout.addWidget(self.z_title)
        layout.addWidget(self.z_table)
        layout.addLayout(buttons)

    def _show_z_table(self, shown: bool) -> None:
        self.z_title.setVisible(shown)
        self.z_table.setVisible(shown)

    def _show_mode(self, *_: Any) -> None:
        if self.reference.layer() is not None:
            text = "Scores each ticked layer, and bicubic of the LR layer, against the reference."
        elif len(self.methods.layers()) == 2:
            text = "No reference: the two ticked layers are compared as independent halves."
        else:
            text = "No reference: the even and odd slices of the ticked layer are compared."
        found, z_text = z_plan(self.lr.layer(), self.methods.layers())
        if found and not self.whole_stack.isChecked():
            z_text = "z-consistency against the LR is measured on the whole stack: tick \"Whole stack too\"."
        self.mode.setText(f"{text} {z_text}".strip())

    # -- running --------------------------------------------------------------------------------
    def run(self) -> None:
        """Check the choices, then compute in a worker (problems become notifications)."""
        from napari.utils.notifications import show_error

        if self.run_panel.running:
            return
        try:
            job = self._prepare()
        except (ValueError, OSError) as exc:  # LayerError is a ValueError
            show_error(f"Compare: {exc}")
            self.run_panel.status.setText(f"Not started: {exc}")
            return
        self._job, self.scores, self.records, self.z_records = job, {}, [], []
        self._fill_table()
        self._show_z_table(job.z_lr is not None)
        self.run_panel.start(job.events, self._on_event, self._on_end)

    def _prepare(self) -> _Job:
        ref_layer, layers, lr_layer = self.reference.layer(), self.methods.layers(), self.lr.layer()
        threshold = self.threshold.currentData() or ("1/7" if ref_layer is not None else "half-bit")
        options: dict[str, Any] = dict(whole_stack=self.whole_stack.isChecked(), threshold=threshold,
                                       resolution_window=self.frc_window.currentData())  # fmt: skip
        if ref_layer is None:
            return self._reference_free(layers, options)
        if not layers and lr_layer is None:
            raise LayerError("tick the layers to score against the reference, or choose an LR layer (bicubic)")
        if any(layer == ref_layer for layer in layers):
            raise LayerError(f"'{ref_layer.name}' is the reference: untick it among the layers to score")
        physical = sources_physical(ref_layer, lr_layer, *layers)
        reference = layer_source(ref_layer, physical=physical)
        sources = [layer_source(layer, physical=physical) for layer in layers]
        if lr_layer is not None:
            factor = bicubic_factor(lr_layer, reference, physical=physical)
            sources.append(bicubic_source(lr_layer, factor, physical=physical))
        field = common_field(reference, sources)
        pixel_size = in_plane_pixel_size(ref_layer)
        current = self._current(ref_layer, field) - field.z[0]
        stacks = {source.label: field.stack(source) for source in sources}

        scoring = EvaluationOptions(pixel_size=pixel_size, threshold=options["threshold"],
                                    resolution_window=options["resolution_window"])  # fmt: skip

        def events() -> Generator[Event, None, None]:
            return iter_compare(field.stack(reference), stacks, scoring, current=current,
                                whole_stack=options["whole_stack"])  # fmt: skip

        return self._with_z(_Job(field, pixel_size, True, events), lr_layer, layers, options["whole_stack"])

    def _with_z(self, job: _Job, lr_layer: Any, layers: list[Any], whole: bool) -> _Job:
        """Add the z-consistency of the ticked layers that are 3-D results of the LR stack (and bicubic) to a job."""
        found, _ = z_plan(lr_layer, layers)
        if not found or not whole:
            return job
        outputs = {layer.name: whole_stack(layer_source(layer, physical=False)) for layer, _ in found}
        for s in sorted({s for _, s in found if s > 1}):
            bicubic = bicubic_source(lr_layer, s, physical=False)
            outputs[bicubic.label] = whole_stack(bicubic)
        lr = whole_stack(layer_source(lr_layer, physical=False))

        def z() -> Generator[Event, None, None]:
            return iter_z_consistency(lr, outputs)

        return dataclasses.replace(job, events=_then(job.events, z), z_lr=lr_layer.name)

    def _reference_free(self, layers: list[Any], options: dict[str, Any]) -> _Job:
        lr_layer = self.lr.layer()
        if len(layers) not in (1, 2):
            raise LayerError(
                "without a reference, tick one layer (its even and odd slices are compared) or two layers "
                "(independent acquisitions of the same field)"
            )
        physical = sources_physical(*layers)
        sources = [layer_source(layer, physical=physical) for layer in layers]
        if len(layers) == 1 and (sources[0].ndim != 3 or sources[0].shape[0] < 2):
            raise LayerError(f"'{layers[0].name}' is a single image: even/odd halves need a stack; tick two layers")
        field = common_field(sources[0], sources[1:])
        pixel_size = in_plane_pixel_size(layers[0])
        current = self._current(layers[0], field) - field.z[0]
        first, second = field.stack(sources[0]), field.stack(sources[-1]) if len(layers) == 2 else None
        if second is None:
            compared = f"even vs odd slices of {sources[0].label}"
        else:
            compared = f"{sources[0].label} vs {sources[1].label} (independent acquisitions)"
        window = options.pop("resolution_window")

        def events() -> Generator[Event, None, None]:
            return iter_reference_free(first, second, compared=compared, pixel_size=pixel_size, window=window,
                                       current=current, **options)  # fmt: skip

        return self._with_z(_Job(field, pixel_size, False, events), lr_layer, layers, options["whole_stack"])

    def _current(self, layer: Any, field: Any) -> int:
        """Return the slice on screen, in reference slices (the field's first slice if it is not on screen)."""
        if layer.ndim == 2:
            return 0
        try:
            z = current_slice(self.viewer, layer)
        except LayerError:
            return field.z[0]
        return z if z in field.z else field.z[0]

    def _on_event(self, event: Event) -> None:
        """Show the first slice's scores as soon as they come, the stack's when scored, then the z-consistency."""
        job = self._job
        assert job is not None  # events only come while a job runs
        if event.kind == "done" and isinstance(event.payload, dict):  # the z-consistency job's result
            self.z_records = z_records_of(event.payload, lr=job.z_lr or "")
            fill_table(self.z_table, self.z_records, z_cell_texts, z_cell_tip)
            return
        if not isinstance(event.payload, Scores):  # the start, or a z-consistency slice
            return
        if not (event.kind in ("done", "scored") or (event.kind == "slice" and event.done == 1)):
            return
        scores = event.payload
        if scores.z is not None:  # an index into the field's slices: the layer's slice
            scores = dataclasses.replace(scores, z=job.field.z[scores.z])
        self.scores[scores.scope] = scores
        new = records_of(scores, field=job.field.describe(), pixel_size=job.pixel_size)
        scope = new[0]["scope"] if new else ""
        self.records = [r for r in self.records if r["scope"] != scope] + new
        self._fill_table()
        shown = self.scores.get("stack") or self.scores.get("slice")
        assert shown is not None  # this event's own scores, at least
        where = f"slice {shown.z}" if shown.scope == "slice" else f"{shown.slices} slices pooled"
        self.plot.show_scores(shown, title=f"FRC, {where}, {job.field.describe().split(' of ')[-1]}")

    def _fill_table(self) -> None:
        fill_table(self.table, self.records, cell_texts, cell_tip)
        fill_table(self.z_table, self.z_records, z_cell_texts, z_cell_tip)

    def _on_end(self, outcome: str, error: BaseException | None) -> None:
        job = self._job
        if job is None:
            return
        if outcome == "done":
            what = f"data range {self.records[0]['data_range']:g}" if job.referenced else "reference-free"
            z = f" z-consistency of {len(self.z_records)} stacks against the LR '{job.z_lr}'." if job.z_lr else ""
            self.run_panel.status.setText(f"Compared on {job.field.describe()} ({what}).{z}")
        elif outcome == "cancelled" and job.z_lr and "stack" in self.scores:
            self.run_panel.status.setText("Cancelled during the z-consistency: the table has the whole stack's scores.")

    # -- export ---------------------------------------------------------------------------------
    def save_plot(self, path: str | Path) -> Path:
        """Write the FRC plot as shown (PNG, SVG or PDF by the file's ending)."""
        return self.plot.save(path)

    def save_table(self, path: str | Path) -> Path:
        """Write the tables as CSV (scores, then z-consistency rows), numbers in full precision."""
        return write_csv(path, self.records + self.z_records)

    def _choose_plot_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the FRC plot", "frc.png", "Images (*.png *.svg *.pdf)")
        if path:
            self.save_plot(path)

    def _choose_table_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the table", "scores.csv", "CSV (*.csv)")
        if path:
            self.save_table(path)
