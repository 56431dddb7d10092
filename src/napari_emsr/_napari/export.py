"""Dock widget "Export": write a layer, or super-resolve a whole LR volume straight to disk.

"Write the layer" saves an image layer (e.g. a Super-resolve result) slice by slice with its pixel
size (the library's export job, :func:`napari_emsr.io.iter_write`). "Super-resolve to disk" runs
:func:`napari_emsr.iter_super_resolve` with ``output=``: slices
are read lazily from the layer's (dask) data and written as they finish, so the result is never
held in memory. Both write under a temporary name; Cancel stops between tiles / slices and leaves
no file behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_emsr._napari.common.engine_options import EngineOptions, engine_pixel_size
from napari_emsr._napari.common.layers import (
    LayerCombo,
    image_data,
    layer_pixel_size,
    newest_result,
    physical_geometry,
)
from napari_emsr._napari.common.run_panel import RunPanel, gui_message

if TYPE_CHECKING:
    import napari
    from napari_emsr.events import Event

__all__ = ["ExportWidget", "MODES", "FORMATS"]

MODES = {"Write the layer": "layer", "Super-resolve to disk": "super-resolve"}
#: format label -> (file ending, endings it accepts)
FORMATS = {
    "OME-TIFF": (".ome.tif", (".ome.tif", ".ome.tiff", ".tif", ".tiff")),
    "OME-Zarr": (".ome.zarr", (".ome.zarr", ".zarr")),
}


def with_ending(path: str, fmt: str) -> str:
    """``path`` ending as format ``fmt`` asks (``scan`` -> ``scan.ome.zarr``; ``scan.ome.tif`` too)."""
    ending, accepted = FORMATS[fmt]
    if not path or path.lower().endswith(accepted):
        return path
    for other in sorted((e for _, (_, es) in FORMATS.items() for e in es), key=len, reverse=True):
        if path.lower().endswith(other):
            return path[: -len(other)] + ending
    return path + ending


class ExportWidget(QWidget):
    """Write an image layer, or the super-resolved version of a whole volume, to OME-TIFF / OME-Zarr."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_combo = LayerCombo(viewer, prefer=newest_result)  # the last result, then the user's selection
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.engine = EngineOptions()
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.path = QLineEdit(placeholderText="output file (.ome.tif) or folder (.ome.zarr)")  # type: ignore[call-overload]
        self.browse = QPushButton("Browse...")
        self.replace = QCheckBox("Replace an existing output")
        self.pyramid = QCheckBox("Multiscale pyramid (OME-Zarr: fast to browse in napari)", checked=True)  # type: ignore[call-overload]
        self.run_panel = RunPanel("Export", run_text="Export")
        self._output: Path | None = None
        self._started = False
        self._layout()
        self.mode.currentTextChanged.connect(self._show_mode)
        self.format.currentTextChanged.connect(lambda fmt: self.path.setText(with_ending(self.path.text(), fmt)))
        self.browse.clicked.connect(self._choose_output)
        self.run_panel.run_button.clicked.connect(self.run)
        self._show_mode()

    def _layout(self) -> None:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("Image", self.layer_combo.native)
        form.addRow("Export", self.mode)
        form.addRow("Format", self.format)
        form.addRow("Output", row)
        form.addRow("", self.replace)
        form.addRow("", self.pyramid)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.engine)
        layout.addWidget(self.run_panel)
        layout.addStretch(1)

    def _show_mode(self, *_: Any) -> None:
        self.engine.setVisible(MODES[self.mode.currentText()] == "super-resolve")

    def _choose_output(self) -> None:
        fmt = self.format.currentText()
        ending = FORMATS[fmt][0]
        layer = self.layer_combo.layer()
        suggestion = (layer.name if layer is not None else "export") + ending
        path, _ = QFileDialog.getSaveFileName(self, "Export to", suggestion, f"{fmt} (*{ending})")
        if path:
            self.path.setText(with_ending(path, fmt))
            self.replace.setChecked(Path(self.path.text()).exists())  # the dialog asked before replacing

    def run(self) -> None:
        """Check the choices, then write in a worker (problems become notifications)."""
        from napari.utils.notifications import show_error

        if self.run_panel.running:
            return
        try:
            make_events = self._prepare()
        except (ValueError, OSError) as exc:  # LayerError, ModelFileError and bad paths are ValueErrors / OSErrors
            message = gui_message(exc)
            show_error(f"Export: {message}")
            self.run_panel.status.setText(f"Not started: {message}")
            return
        self._started = False
        self.run_panel.start(make_events, self._on_event, self._on_end)

    def _prepare(self) -> Callable[[], Generator[Any, None, None]]:
        from napari_emsr import iter_super_resolve
        from napari_emsr.io import iter_write

        layer = self.layer_combo.layer()
        data = image_data(layer)
        text = with_ending(self.path.text().strip(), self.format.currentText())
        if not text:
            raise ValueError("choose where to write the output (Browse...)")
        self.path.setText(text)
        output = self._output = Path(text).expanduser()
        replace = self.replace.isChecked()
        if output.exists() and not replace:
            raise FileExistsError(f"{output} exists: tick 'Replace an existing output' or choose another name")
        if not output.parent.is_dir():
            raise FileNotFoundError(f"{output.parent} does not exist; create the folder first")
        if MODES[self.mode.currentText()] == "layer":
            sizes, shift = physical_geometry(layer.scale, layer.translate, layer.units)
            return lambda: iter_write(data, output, pixel_size_nm=sizes, translate=shift, overwrite=replace,
                                      pyramid=self.pyramid.isChecked())  # fmt: skip
        model = self.engine.model()
        options = self.engine.options(pixel_size=engine_pixel_size(layer_pixel_size(layer)), overwrite=replace,
                                      pyramid=self.pyramid.isChecked())  # fmt: skip
        return lambda: iter_super_resolve(data, model, output=output, options=options)

    def _on_event(self, event: Event) -> None:
        assert self._output is not None  # set when the run starts
        if event.kind == "start":
            self._started = True
            if event.job == "predict":
                plan = event.payload
                self.run_panel.status.setText(
                    f"Super-resolving {list(plan.input_shape)} -> {list(plan.output_shape)} on {plan.device} "
                    f"into {self._output.name}"
                )
            else:
                self.run_panel.status.setText(f"Writing {event.payload.shape} into {self._output.name}")

    def _on_end(self, outcome: str, error: BaseException | None) -> None:
        if outcome == "done":
            self.run_panel.status.setText(f"Wrote {self._output}")
        elif self._started and self._output is not None:
            from napari_emsr.io import discard_partial

            discard_partial(self._output)  # the engine keeps an OME-Zarr's partial folder for resuming; not here

    def cancel(self) -> None:
        """Stop between two tiles (or slices); nothing is left under the output's name or beside it."""
        self.run_panel.cancel()
