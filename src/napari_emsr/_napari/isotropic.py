"""Dock widget "Isotropic": an anisotropic (z, y, x) stack in, a stack with isotropic voxels out.

A thin adapter over :mod:`napari_emsr.isotropic`: the layer's z step over its xy pixel size gives
``K`` (the "z factor", editable); the model is a model file made for the volume, or is trained on
the volume's own xy slices first (:func:`~napari_emsr.isotropic.iter_train_isotropic`, a time
budget in minutes). One worker runs the training's events, then those of the reconstruction
(:func:`~napari_emsr.isotropic.iter_isotropic`) through the run panel; the training's ``"done"``
event is passed on as ``"trained"``, so that only the reconstruction's ends the run.
The result layer is made at the reconstruction's ``"start"`` and filled slice by slice. Its z
scale is the input's divided by ``K`` and its translate the input's: output row ``j`` lies at input
slice ``j / K``, so it overlays the input in world (physical) units.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, Widget
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from napari_emsr._napari.common.engine_options import (
    ERROR_STYLE,
    WARNING_STYLE,
    EngineOptions,
    engine_pixel_size,
)
from napari_emsr._napari.common.layers import (
    LayerCombo,
    LayerError,
    acquired,
    image_data,
    layer_pixel_size,
)
from napari_emsr._napari.common.run_panel import RunPanel, format_seconds, gui_message

if TYPE_CHECKING:
    import napari
    from napari_emsr.events import Event

__all__ = ["IsotropicWidget", "TRAINING_SETTINGS", "TRAIN_ITEM", "FILE_ITEM", "VIEW_ITEMS"]

#: the Model choices
TRAIN_ITEM, FILE_ITEM = "Train on this volume first", "Model file..."
#: the Views choices (label -> iter_isotropic's views), with their tooltips
VIEW_ITEMS = {
    "xz+yz": "restore every xz and every yz plane and average the two views (best)",
    "xz": "restore the xz planes only (half the work)",
    "yz": "restore the yz planes only (half the work)",
}
#: TrainingConfig fields of "Train on this volume first" (with the minutes, device and precision of the
#: panel): a time budget, as `emsr isotropic` without --steps
TRAINING_SETTINGS: dict[str, Any] = {"steps": 100_000, "budget": True, "batch": 4, "patch": 64, "val_every": 250}
#: this panel's names of the library's options in error hints
CONTROLS = {
    "model": f'choose "{TRAIN_ITEM}" as the Model, or a model file it made',
    "z_factor": 'set the "z factor"',
    "overwrite": 'tick "Replace an existing model file"',
    "resume": 'tick "Replace an existing model file" (training starts again)',
    "volume": "choose a larger (z, y, x) image layer",
}
_MODELS = "EMSR models (*.safetensors)"


def _is_stack(layer: Any) -> bool:
    """Whether ``layer`` is a grey-scale 3-D image layer (what isotropic reconstruction takes)."""
    from napari.layers import Image

    return isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb


def layer_z_factor(layer: Any) -> float | None:
    """Return ``K`` = the layer's z step / its mean xy pixel size (from its scale and units), None if unknown."""
    sizes = layer_pixel_size(layer)
    if sizes is None or len(sizes) != 3 or any(v is None or not v > 0 for v in sizes):
        return None
    z, y, x = (float(v) for v in sizes if v is not None)
    return z / ((y + x) / 2)


def _anisotropy(layer: Any) -> float:
    return layer_z_factor(layer) or 0.0


class StackCombo(LayerCombo):
    """A :class:`LayerCombo` that offers 3-D grey-scale image layers only (the most anisotropic one first)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, prefer=lambda layers: max(acquired(layers), key=_anisotropy), accepts=_is_stack)

    def _images(self) -> list[Any]:
        return [layer for layer in self.viewer.layers if _is_stack(layer)]


def _summary(model: Any) -> tuple[str, str]:
    """(one line on what a scale-1 model is, style): random weights are a visible warning.

    Its own, not :func:`~._napari.common.engine_options.model_summary`, which speaks of input and
    output pixel sizes of a super-resolution network.
    """
    meta = model.metadata
    what = f"EMSR x1{', ' + meta.name if meta.name else ''}"
    if meta.input_pixel_size_nm:
        what += f", for {meta.input_pixel_size_nm:g} nm xy pixels"
    if not meta.trained:
        return f"RANDOM WEIGHTS, not a trained model ({what}): use it only to test the pipeline.", WARNING_STYLE
    return f"Trained model: {what}.", ""


def _label() -> Label:
    label = Label()
    label.native.setWordWrap(True)  # magicgui's Label is one fixed-size line
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    label.native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


@dataclass
class _Job:
    """One run: its input layer, K, the model (a file, or the file training writes), the result layer."""

    layer: Any
    factor: float
    views: str
    model: Path | None  # the model file chosen (None: trained first)
    train_out: Path | None  # where training writes the model (None: no training)
    started: float = field(default_factory=time.perf_counter)
    trained: Path | None = None  # the model training wrote, once it has
    summary: Any = None  # the reconstruction's IsotropicSummary
    output: Any = None


class IsotropicWidget(QWidget):
    """Reconstruct an isotropic volume from an anisotropic image layer, with a model trained on it or a file."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.layer_combo = StackCombo(napari_viewer)
        self.layer_combo.label = "Image"
        self.layer_combo.tooltip = "an anisotropic (z, y, x) stack: serial sections, ATUM, SBF-SEM"
        self.z_factor = FloatSpinBox(label="z factor", value=2.0, min=1.01, max=1000.0, step=0.1)
        self.z_factor.native.setDecimals(2)
        self.z_factor.min = 1.01  # again, now at 2 decimals
        self.z_factor.tooltip = "K = z step / xy pixel size (any number > 1), from the layer's scale; editable"
        self.z_note = _label()
        self.source = ComboBox(label="Model", choices=[TRAIN_ITEM, FILE_ITEM], value=TRAIN_ITEM)
        self.source.tooltip = "train a network on this volume's own xy slices first, or use a model file it made"
        self.model_file = FileEdit(label="Model file", mode=FileDialogMode.EXISTING_FILE, filter=_MODELS, nullable=True)
        self.model_file.line_edit.native.setPlaceholderText("an isotropic model (.safetensors)")
        self.model_file.choose_btn.text = "Browse..."
        self.model_status = _label()
        self.minutes = FloatSpinBox(label="Training minutes", value=15.0, min=0.5, max=100_000.0, step=5.0)
        self.minutes.native.setDecimals(1)
        self.minutes.tooltip = "the training's time budget; the reconstruction follows"
        self.save_as = FileEdit(label="Save model as", mode=FileDialogMode.OPTIONAL_FILE, filter=_MODELS, nullable=True)
        self.save_as.line_edit.native.setPlaceholderText("a temporary folder")
        self.save_as.choose_btn.text = "Browse..."
        self.replace = CheckBox(text="Replace an existing model file")
        self.views = ComboBox(label="Views", choices=list(VIEW_ITEMS), value="xz+yz")
        for index, tip in enumerate(VIEW_ITEMS.values()):
            self.views.native.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        self.engine = EngineOptions()
        for shown_elsewhere in (self.engine.source, self.engine.path, self.engine.model_status):
            shown_elsewhere.visible = False  # the model is chosen above
        self.engine.self_ensemble.value = False  # its rotations would turn z into x
        self.engine.self_ensemble.visible = False
        self.run_panel = RunPanel(
            "Isotropic", run_text="Reconstruct",
            cancel_tip="Stop after the current tile or training step: the half-made result is removed; a model being "
            "trained keeps its best state so far.",
            cancelling_text="Cancelling after the current tile or step...", cancelled_text="Cancelled.",
            controls=CONTROLS,
        )  # fmt: skip
        self.result_layer: Any = None
        self._job: _Job | None = None
        self._factor_layer: Any = None  # the layer whose scale filled the z factor
        self._layer_factor: float | None = None  # the exact K of that scale (the box shows 2 decimals)
        self._loaded: tuple[tuple, Any] | None = None
        form: Container = Container(widgets=[
            self.layer_combo, self.z_factor, self.z_note, self.source, self.model_file, self.model_status,
            self.minutes, self.save_as, self.replace, self.views,
        ])  # fmt: skip
        form.margins = (0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.engine)
        layout.addWidget(self.run_panel)
        layout.addStretch(1)
        self.layer_combo.changed.connect(self._layer_changed)
        self.source.changed.connect(self._source_changed)
        self.model_file.changed.connect(self._show_model)
        self.run_panel.run_button.clicked.connect(self.run)
        self._source_changed()
        self._layer_changed()

    # -- the z factor -------------------------------------------------------------------------
    def _layer_changed(self, *_: Any) -> None:
        layer = self.layer_combo.layer()
        if layer is self._factor_layer:  # a rename: the user's K stays
            return
        if self._factor_layer is not None:
            self._factor_layer.events.scale.disconnect(self._scale_changed)
        self._factor_layer = layer
        if layer is not None:
            layer.events.scale.connect(self._scale_changed)
        self._fill_factor()

    def _scale_changed(self, *_: Any) -> None:
        self._fill_factor()

    def _fill_factor(self) -> None:
        """Set the z factor from the chosen layer's scale, and say where it came from."""
        layer = self._factor_layer
        self._layer_factor = None
        if layer is None:
            self._note("K = z step / xy pixel size. Choose a 3-D image layer (2-D layers are not listed).", "")
            return
        factor = layer_z_factor(layer)
        if factor is None:
            self._note("K = z step / xy pixel size: the layer's scale does not give them (Layer > scale); type K.",
                       WARNING_STYLE)  # fmt: skip
        elif not factor > 1.0 + 1e-6:
            self._note(f"K = z step / xy pixel size: the layer's scale gives {factor:.3g}, not coarser in z than in "
                       "xy; type K if its scale is wrong.", WARNING_STYLE)  # fmt: skip
        else:
            self._layer_factor = factor
            self.z_factor.value = round(factor, 2)
            z, y, x = (float(v) for v in layer_pixel_size(layer) or () if v is not None)
            self._note(f"K = z step / xy pixel size = {z:g} / {(y + x) / 2:g} nm, from the layer's scale.", "")

    def _note(self, text: str, style: str) -> None:
        self.z_note.value = text
        self.z_note.native.setStyleSheet(style)

    def factor(self) -> float:
        """Return ``K`` for the run: the layer's exact ratio while the box shows it, else the value typed."""
        value = float(self.z_factor.value)
        exact = self._layer_factor
        return exact if exact is not None and math.isclose(value, round(exact, 2), abs_tol=1e-9) else value

    # -- the model ----------------------------------------------------------------------------
    def _training(self) -> bool:
        return self.source.value == TRAIN_ITEM

    def _source_changed(self, *_: Any) -> None:
        train = self._training()
        training_rows: list[Widget] = [self.minutes, self.save_as, self.replace]
        for widget in training_rows:
            widget.visible = train
        for row in (self.model_file, self.model_status):
            row.visible = not train
        self._show_model()

    def model_path(self) -> Path | None:
        """Return the model file typed or chosen, or None."""
        text = self.model_file.line_edit.value.strip()
        return Path(text).expanduser() if text else None

    def _model(self) -> Any:
        """Return the chosen model file's network, loaded once per file version (ModelFileError, ValueError if none)."""
        from napari_emsr.model_io import load_model

        path = self.model_path()
        if path is None:
            raise ValueError(f'no model file chosen: choose one (Browse...), or "{TRAIN_ITEM}" as the Model')
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None
            self._loaded = (key, load_model(path))
        return self._loaded[1]

    def _show_model(self, *_: Any) -> None:
        """Say what the model file is (a problem is shown here, not raised)."""
        if self._training() or self.model_path() is None:
            self._model_status("Choose a model made by an earlier isotropic run (Browse...).", "")
            return
        try:
            model = self._model()
        except (ValueError, OSError) as exc:
            self._model_status(f"Cannot use this model: {exc}", ERROR_STYLE)
            return
        if model.config.scale != 1:
            self._model_status(f"A x{model.config.scale} super-resolution model: isotropic reconstruction needs a "
                               f'scale-1 model trained on the volume ("{TRAIN_ITEM}").', ERROR_STYLE)  # fmt: skip
            return
        text, style = _summary(model)
        sampling = (model.metadata.provenance or {}).get("section_sampling") or {}
        if sampling.get("factor"):
            high = sampling.get("factor_max")
            text += f" Trained for a z factor of {sampling['factor']:g}" + (f"..{high:g}." if high else ".")
        self._model_status(text, style)

    def _model_status(self, text: str, style: str) -> None:
        self.model_status.value = text
        self.model_status.native.setStyleSheet(style)

    def _training_output(self, layer: Any) -> Path:
        """Return the model file training writes: the path given (checked), else one in a new temporary folder."""
        text = self.save_as.line_edit.value.strip()
        if not text:
            stem = re.sub(r"[^\w.-]+", "_", layer.name).strip("._") or "volume"
            return Path(tempfile.mkdtemp(prefix="napari-emsr-isotropic-")) / f"{stem}.isotropic.safetensors"
        out = Path(text if text.endswith(".safetensors") else text + ".safetensors").expanduser()
        if not out.parent.is_dir():
            raise FileNotFoundError(f'{out.parent} does not exist: create the folder for "Save model as" first')
        if out.exists() and not self.replace.value:
            raise FileExistsError(f"{out} exists: tick \"Replace an existing model file\", choose another name, or "
                                  f"choose it as the Model file to use it")  # fmt: skip
        return out

    def _training_config(self) -> Any:
        from napari_emsr.config import TrainingConfig, training_precision_of

        precision = training_precision_of(self.engine.precision.value or "auto")
        return TrainingConfig(**{**TRAINING_SETTINGS, "minutes": float(self.minutes.value),
                                 "device": self.engine.device.value, "precision": precision})  # fmt: skip

    # -- running ------------------------------------------------------------------------------
    def run(self) -> None:
        """Check the choices, then train (if asked) and reconstruct in a worker (problems become notifications)."""
        from napari.utils.notifications import show_error

        if self.run_panel.running:
            return
        try:
            job, make_events = self._prepare()
        except (ValueError, OSError) as exc:  # LayerError, ModelFileError, ConfigError are ValueErrors
            message = gui_message(exc, CONTROLS)
            show_error(f"Isotropic: {message}")
            self.run_panel.status.setText(f"Not started: {message}")
            return
        self._job = job
        self.run_panel.start(make_events, self._on_event, self._on_end)
        if job.train_out is not None:
            self.run_panel.status.setText(
                f"Training on the xy slices of '{job.layer.name}' for up to {self.minutes.value:g} min (K = "
                f"{job.factor:.4g}); the model is saved to {job.train_out}, then the volume is reconstructed."
            )

    def _prepare(self) -> tuple[_Job, Callable[[], Generator[Any, None, None]]]:
        from napari_emsr.isotropic import iter_isotropic, iter_train_isotropic, resolve_z_factor
        from napari_emsr.isotropic.train import training_slices

        layer = self.layer_combo.layer()
        if layer is None:
            raise LayerError("no 3-D image layer: open an anisotropic (z, y, x) stack first (File > Open)")
        data = image_data(layer)
        if data.ndim != 3:
            raise LayerError(f"layer '{layer.name}' is a 2-D image: isotropic reconstruction needs a (z, y, x) stack")
        factor, _ = resolve_z_factor(self.factor(), None)
        views = self.views.value
        sizes = engine_pixel_size(layer_pixel_size(layer))
        options = self.engine.options(pixel_size=sizes)  # self-ensemble: hidden, off
        if self._training():
            out, model, config = self._training_output(layer), None, self._training_config()
        else:
            self._model()  # a missing or broken file is refused here; the library checks what it is
            out, model, config = None, self.model_path(), None
        job = _Job(layer, factor, views, model, out)
        provenance = {"data": layer.name, "command": "napari-emsr Isotropic panel"}
        overwrite = bool(self.replace.value)

        def events() -> Generator[Any, None, None]:  # runs in the worker thread
            chosen = model
            if out is not None:
                training = iter_train_isotropic(
                    training_slices(data), out, z_factor=factor, config=config, pixel_size=sizes,
                    provenance=provenance, overwrite=overwrite,
                )  # fmt: skip
                try:
                    for event in training:
                        if event.kind == "done":  # not the run's end: the reconstruction follows
                            chosen = event.payload.model
                            event = dataclasses.replace(event, kind="trained")
                        yield event
                finally:
                    training.close()  # on Cancel: the training saves its state now
            yield from iter_isotropic(data, chosen, z_factor=factor, views=views, options=options)

        return job, events

    def _on_event(self, event: Event) -> None:
        job = self._job
        assert job is not None  # events only come while a job runs
        status = self.run_panel.status
        if event.job == "train":
            where = f" Model: {job.train_out}."
            if event.kind == "info" and event.message:
                status.setText(f"Training: {event.message}.{where}")
            elif event.kind == "validation":
                v = event.payload
                cubic = v.scores["bicubic"]
                best = " New best model saved." if v.improved else ""
                status.setText(f"Training step {v.step}: validation SSIM {v.scores['ssim']:.4f} (cubic "
                               f"{cubic['ssim']:.4f}), PSNR {v.scores['psnr']:.2f} dB (cubic {cubic['psnr']:.2f})."
                               f"{best}{where}")  # fmt: skip
            elif event.kind == "trained":
                job.trained = Path(event.payload.model)
                self.model_file.value = job.trained  # to reuse it: choose "Model file..."
                status.setText(f"Trained ({event.payload.steps} steps): the model is saved to {job.trained}. "
                               "Reconstructing...")  # fmt: skip
            return
        if event.kind == "start":
            job.summary = s = event.payload
            engine = s.engine
            status.setText(
                f"Reconstructing on {engine.device}: {list(s.input_shape)} -> {list(s.output_shape)} ({s.views}, "
                f"K = {s.z_factor:.4g}), tile {engine.tile}, halo {engine.halo}, {engine.precision}."
                + (f" Model: {job.trained}." if job.trained is not None else "")
            )
            job.output = self._add_result(job)
        elif event.kind == "slice" and job.output is not None:
            done = event.payload
            job.output.data[done.index] = done.image
            job.output.refresh()
        elif event.kind == "done" and job.output is not None:
            job.output.data = event.payload

    def _add_result(self, job: _Job) -> Any:
        """Return the result layer, empty, over its input: z scale / K, the same translate."""
        s, layer = job.summary, job.layer
        trained = bool(s.engine.trained)
        scale = np.array(layer.scale, dtype=float)
        scale[0] /= job.factor
        model = job.trained or job.model
        source = {"source_layer": layer.name, "job": "isotropic", "z_factor": job.factor, "views": job.views,
                  "trained": trained, "model_file": str(model) if model else None,
                  "summary": s.to_dict()}  # fmt: skip
        return self.viewer.add_image(
            np.zeros(s.output_shape, dtype=s.engine.dtype),
            name=f"{layer.name} isotropic" + ("" if trained else " [random weights]"),
            scale=tuple(scale),
            translate=tuple(layer.translate),
            rotate=layer.rotate,
            shear=layer.shear,
            affine=layer.affine,
            units=layer.units,
            axis_labels=layer.axis_labels,
            contrast_limits=layer.contrast_limits,
            colormap=layer.colormap,
            metadata={"napari_emsr": source},
        )

    def _on_end(self, outcome: str, error: BaseException | None) -> None:
        job, self._job = self._job, None
        assert job is not None  # the run that ends was started
        if outcome != "done":
            if job.output is not None and job.output in self.viewer.layers:
                self.viewer.layers.remove(job.output)
            kept = self._kept(job)
            if kept:
                self.run_panel.status.setText(f"{self.run_panel.status.text()} {kept}")
            return
        self.result_layer = job.output
        s = job.summary
        seconds = format_seconds(time.perf_counter() - job.started)
        sizes = s.output_pixel_size_nm
        z_pixel = f", z pixel {sizes[0]:.4g} nm" if sizes and sizes[0] is not None else ""
        trained = f" The model is saved to {job.trained}." if job.trained is not None else ""
        note = "" if s.engine.trained else " Random weights: this is NOT a reconstruction."
        self.run_panel.status.setText(
            f"Done in {seconds}: '{job.output.name}' {job.output.data.shape} (K = {job.factor:.4g}{z_pixel}).{trained}"
            f"{note}"
        )

    def _kept(self, job: _Job) -> str:
        """Return what a stopped training left on disk, in words ('' when nothing)."""
        if job.train_out is None:
            return ""
        if job.trained is not None:
            return f"The trained model is saved to {job.trained}."
        if job.train_out.is_file():
            return f"The best model so far is saved to {job.train_out}."
        return ""

    def cancel(self) -> None:
        """Stop the run between two tiles (or training steps); its result layer is removed."""
        self.run_panel.cancel()
