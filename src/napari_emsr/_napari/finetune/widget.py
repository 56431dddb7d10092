"""Dock widget "Fine-tune": train a model on the user's LR layer and an HR layer over a field inside it.

A thin adapter over the library, running what ``emsr finetune`` runs: the panel turns its layers and
fields into a :class:`~napari_emsr.training.FineTuneJob` (the pixel sizes from the layers' scales)
and :func:`~napari_emsr.training.iter_finetune_pair` runs it in the background (a
:class:`~napari_emsr._napari.common.run_panel.RunPanel`), with live loss and validation plots and a
preview layer. "Locate HR in LR" runs :func:`~napari_emsr.training.iter_locate` through a second,
small RunPanel and draws the field as a rectangle the user can move; training uses where it is.
"Fit degradation" runs :func:`~napari_emsr.training.finetune_pair.iter_fit_degradation` (a third one)
and shows what the fitted strategies will simulate: the parameters, a real LR crop beside one
simulated from the HR crop over it (two layers), and the noise-variance curves.
Cancel stops between steps, keeping the best model so far and the last state, which Resume continues.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget
from superqt import QCollapsible

from napari_emsr._napari.common.engine_options import ERROR_STYLE, EngineOptions
from napari_emsr._napari.common.layers import (
    LayerCombo,
    acquired,
    coarsest,
    finest,
    overlay_transform,
    plane_pixel_size,
)
from napari_emsr._napari.common.run_panel import RunPanel, gui_message
from napari_emsr._napari.common.scroll import scrolled
from napari_emsr._napari.finetune.fit_plot import NoiseCurvePlot
from napari_emsr._napari.finetune.form import TrainingForm
from napari_emsr._napari.finetune.hr_field import (
    FIELD_LAYER,
    draw_field,
    field_offset,
    field_size,
    find_field_layer,
    world_offset,
)
from napari_emsr._napari.finetune.plots import TrainingPlots
from napari_emsr._napari.finetune.status import (
    kept_message,
    layer_name,
    noise_summary,
    pair_spec,
    resume_point,
    trained_message,
)

if TYPE_CHECKING:
    import napari

__all__ = ["FineTuneWidget", "FIT_REAL_LAYER", "FIT_SIMULATED_LAYER"]

#: the layers "Fit degradation" adds: a real LR crop, and the LR simulated from the HR crop over it
FIT_REAL_LAYER = "fitted degradation: real LR"
FIT_SIMULATED_LAYER = "fitted degradation: simulated LR"


def _coarser(lr: Any, hr: Any) -> bool:
    """Whether ``lr`` can be the LR of a pair with ``hr``: larger pixels when both are known, else another layer."""
    if lr is None or hr is None:
        return lr is not hr
    lr_size, hr_size = plane_pixel_size(lr), plane_pixel_size(hr)
    if lr_size is None or hr_size is None:
        return lr is not hr
    return lr_size > hr_size


class FineTuneWidget(QWidget):
    """Fine-tune on an LR/HR layer pair, watching losses, validation scores and a preview.

    Signals
    -------
    located(object)
        After "Locate HR in LR": the :class:`~napari_emsr.training.PairReport`, or None if it failed.
    """

    located = Signal(object)

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        # LR: the coarsest acquired layer, HR: the finest. A layer selected in the layer list goes to LR
        # if it is coarser than the HR choice, else to HR if it is finer than both choices
        self.lr_combo = LayerCombo(viewer, prefer=lambda layers: coarsest(acquired(layers)),
                                   accepts=lambda layer: _coarser(layer, self.hr_combo.layer()))  # fmt: skip
        self.hr_combo = LayerCombo(viewer, prefer=lambda layers: finest(acquired(layers)), accepts=self._finer_hr)
        self.locate_panel = RunPanel(
            "Fine-tune", run_text="Locate HR in LR", cancel_tip="Stop locating the HR field",
            cancelling_text="Stopping...", cancelled_text="Not located: cancelled.",
        )  # fmt: skip
        self.locate_panel.status.setVisible(False)  # the pair's own status line below says what happened
        self.locate_button = self.locate_panel.run_button
        self.locate_button.setToolTip(
            "Find the HR field in the LR volume (normalised cross-correlation) and check the HR reference"
        )
        self.fit_panel = RunPanel(
            "Fine-tune", run_text="Fit degradation", cancel_tip="Stop fitting the degradation",
            cancelling_text="Stopping...", cancelled_text="Not fitted: cancelled.",
        )  # fmt: skip
        self.fit_panel.status.setVisible(False)  # fit_status says what happened
        self.fit_button = self.fit_panel.run_button
        self.fit_button.setToolTip(
            "Estimate the blur, tone curve and noise that turn the HR field into the LR: what the fitted and "
            "real+fitted strategies simulate"
        )
        self.fit_status = QLabel(wordWrap=True)  # type: ignore[call-overload]
        self.fit_plot = NoiseCurvePlot(viewer)
        self.fit_plot.setVisible(False)
        self.fitted: Any = None
        self.register_box = QCheckBox("Register finely")
        self.register_box.setToolTip(
            "sub-pixel offset, a rotation of up to 5 degrees, the pixel-size ratio refined around the layers' one "
            "and per-slice drift; the HR is resampled onto the LR grid (the rectangle is then not used)"
        )
        self.z_offset = QSpinBox(minimum=0, maximum=1_000_000)  # type: ignore[call-arg]
        self.z_offset.setToolTip("the LR slice that faces the first HR slice")
        self.pair_status = QLabel("Locate the HR field, or Train (which locates it first).", wordWrap=True)  # type: ignore[call-overload]
        self.offset_status = QLabel(wordWrap=True)  # type: ignore[call-overload]
        self.noise_status = QLabel(wordWrap=True)  # type: ignore[call-overload]
        self.engine = EngineOptions(presets=("lite", "paper"), inference=False)
        self.engine.source.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.engine.source.native.setMinimumContentsLength(12)
        self.form = TrainingForm()
        self.settings = QCollapsible("Model and training settings")
        self.run_panel = RunPanel(
            "Fine-tune", run_text="Train",
            cancel_tip="Stop after the current step: the best model so far is kept, and Resume continues.",
            cancelling_text="Stopping after the current step (the last state is saved)...",
            cancelled_text="Cancelled.",
            controls={"overwrite": 'tick "Replace an existing model file"'},
        )  # fmt: skip
        self.resume_button = QPushButton("Resume", enabled=False)  # type: ignore[call-overload]
        self.resume_button.setToolTip("Continue the run saved next to the output model (its .last.safetensors)")
        self.plots = TrainingPlots(viewer)
        self.use_button = QPushButton("Super-resolve with it", enabled=False)  # type: ignore[call-overload]
        self.preview_layer: Any = None
        self.trained_model: Any = None
        self._running: dict[str, Any] | None = None
        self._noise: tuple[Any, Any] | None = None
        self._watched: Any = None
        self._layout()
        self._connect()

    def _finer_hr(self, layer: Any) -> bool:
        """Whether a layer selected in the layer list becomes the HR: finer than the LR and the HR chosen."""
        hr = self.hr_combo.layer()
        return _coarser(self.lr_combo.layer(), layer) and (hr is None or hr is layer or _coarser(hr, layer))

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("LR", self.lr_combo.native)
        form.addRow("HR", self.hr_combo.native)
        row = QHBoxLayout()
        row.addWidget(self.locate_panel, 1)
        row.addWidget(self.register_box)
        row.addWidget(QLabel("z offset"))
        row.addWidget(self.z_offset)
        form.addRow("", row)
        form.addRow("", self.pair_status)
        form.addRow("", self.offset_status)
        form.addRow("", self.noise_status)
        form.addRow("", self.fit_panel)
        form.addRow("", self.fit_status)
        form.addRow("", self.fit_plot)
        buttons = QHBoxLayout()
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.use_button)
        self.settings.addWidget(self.engine)
        self.settings.addWidget(self.form)
        self.settings.expand(animate=False)
        layout = scrolled(self)
        layout.addLayout(form)
        layout.addWidget(self.settings)
        layout.addWidget(self.run_panel)
        layout.addLayout(buttons)
        layout.addWidget(self.plots, 1)

    def _connect(self) -> None:
        self.locate_button.clicked.connect(self.locate)
        self.fit_button.clicked.connect(self.fit_degradation)
        self.run_panel.run_button.clicked.connect(self.train)
        self.resume_button.clicked.connect(self.resume)
        self.use_button.clicked.connect(self.super_resolve_with_it)
        self.form.out_path.changed.connect(self._update_resume)
        self.z_offset.valueChanged.connect(self._show_offset)
        self.lr_combo.changed.connect(self._show_offset)
        self.hr_combo.changed.connect(self._show_offset)

    # -- locating the HR field ------------------------------------------------------------------
    def _base(self) -> tuple[Any, str]:
        """Return (the base model, or None for a new network, and the preset of a new network).

        The base is a zoo model (by name, the default first), a model file or a new network (``self.engine``).
        """
        preset = self.engine.new_preset()
        return (None, preset) if preset is not None else (self.engine.model(), "lite")

    def _base_if_chosen(self) -> Any:
        """Return the base model if one is chosen and usable, else None (locating needs it only for its scale)."""
        try:
            return self._base()[0]
        except (ValueError, OSError):
            return None

    def locate(self) -> None:
        """Find the HR field in the LR volume in the background; draw it and check the reference."""
        from napari.utils.notifications import show_error

        from napari_emsr.training import finetune_pair

        if self._busy():
            return
        lr_layer, hr_layer = self.lr_combo.layer(), self.hr_combo.layer()
        try:
            pair = self._pair(lr_layer, hr_layer).for_base(self._base_if_chosen())
        except (ValueError, OSError) as exc:
            show_error(f"Fine-tune: {gui_message(exc)}")
            self.located.emit(None)
            return
        self.pair_status.setText("Locating the HR field in the LR volume...")
        found: list[Any] = []  # the "done" event's payload: (report, noise check)
        self.locate_panel.start(
            lambda: finetune_pair.iter_locate(pair),
            lambda event: found.append(event.payload) if event.kind == "done" else None,
            lambda outcome, error: self._located(lr_layer, hr_layer, pair, found, outcome, error),
        )  # fmt: skip
        self.locate_button.setEnabled(False)

    def _located(
        self, lr_layer: Any, hr_layer: Any, pair: Any, found: list[Any], outcome: str, error: BaseException | None
    ) -> None:
        self.locate_button.setEnabled(not self.run_panel.running)
        if outcome == "done":
            report, noise = found[-1]
            self._show_pair(lr_layer, hr_layer, report)
            self._show_noise(hr_layer, noise)
            self.located.emit(report)
            return
        if outcome == "failed" and error is not None:
            self._locate_failed(lr_layer, hr_layer, pair, error)
        else:
            self.pair_status.setText("Not located: cancelled.")
        self.located.emit(None)

    def _pair(self, lr_layer: Any, hr_layer: Any) -> Any:
        """Return the library's pair of the two layers, registered finely if the box is ticked."""
        return pair_spec(lr_layer, hr_layer, register=self.register_box.isChecked())

    # -- fitted degradation ---------------------------------------------------------------------
    def _busy(self) -> bool:
        return self.run_panel.running or self.locate_panel.running or self.fit_panel.running

    def fit_degradation(self) -> None:
        """Fit the pair's degradation in the background; show its parameters, crops and noise curves."""
        from napari.utils.notifications import show_error

        from napari_emsr.training import finetune_pair

        if self._busy():
            return
        lr_layer, hr_layer = self.lr_combo.layer(), self.hr_combo.layer()
        try:
            pair = dataclasses.replace(self._pair(lr_layer, hr_layer), offset=self.field_offset())
            pair = pair.for_base(self._base_if_chosen())
        except (ValueError, OSError) as exc:
            show_error(f"Fine-tune: {gui_message(exc)}")
            return
        self.fit_status.setText("Fitting the degradation (blur, tone curve, noise) to the pair...")
        found: list[Any] = []
        self.fit_panel.start(
            lambda: finetune_pair.iter_fit_degradation(pair, val_slices=self.form.validation_slices()),
            lambda event: found.append(event.payload) if event.kind == "done" else None,
            lambda outcome, error: self._fitted(lr_layer, found, outcome, error),
        )  # fmt: skip

    def _fitted(self, lr_layer: Any, found: list[Any], outcome: str, error: BaseException | None) -> None:
        if outcome != "done":
            self.fit_status.setText("Not fitted: " + (gui_message(error) if error is not None else "cancelled."))
            return
        preview = found[-1]
        self.fitted = preview.fit
        self.fit_status.setText(preview.fit.summary())
        self.fit_plot.show_fit(preview.fit)
        self.fit_plot.setVisible(True)
        self._show_fit_layers(lr_layer, preview)

    def _show_fit_layers(self, lr_layer: Any, preview: Any) -> None:
        """Show the real LR crop, and beside it (to the right) the LR simulated from the HR crop over it."""
        scale = tuple(float(v) for v in lr_layer.scale)
        translate = np.asarray(lr_layer.translate, dtype=float)
        origin = translate + np.asarray(preview.offset, dtype=float) * np.asarray(scale)
        gap = (preview.real.shape[1] + 4) * scale[-1]
        limits = tuple(float(v) for v in lr_layer.contrast_limits)
        for name, image, shift in ((FIT_REAL_LAYER, preview.real, 0.0), (FIT_SIMULATED_LAYER, preview.simulated, gap)):
            where = origin.copy()
            where[-1] += shift
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_image(image[None], name=name, scale=scale, translate=tuple(where), contrast_limits=limits,
                                  colormap="gray")  # fmt: skip

    def _locate_failed(self, lr_layer: Any, hr_layer: Any, pair: Any, error: BaseException) -> None:
        """Say why; for a match too poor to trust, draw the field where the layers place it, to be moved."""
        from napari.utils.notifications import show_error

        from napari_emsr.errors import EMSRError
        from napari_emsr.training.pairs import integer_ratio

        message = gui_message(error)
        if isinstance(error, EMSRError) and any(hint.option == "offset" for hint in error.hints):
            ratio = integer_ratio(pair.lr_pixel_size, pair.hr_pixel_size)[1] if pair.ratio_scale else None
            size = field_size(hr_layer.data.shape, pair.known_scale, ratio)
            offset = world_offset(lr_layer, hr_layer, size)
            draw_field(self.viewer, lr_layer, hr_layer, offset, size, "HR field? not found: move me onto it")
            self._watch_field()
            show_error(
                f"Fine-tune: {message}. The rectangle shows where the layers place the HR field: move it onto the "
                "field, then Train"
            )
        self.pair_status.setText(f"Not located: {message}")

    def _show_pair(self, lr_layer: Any, hr_layer: Any, report: Any) -> None:
        s = report.scale
        size = (report.hr_shape_out[1] // s, report.hr_shape_out[2] // s)
        z, y, x = report.offset
        draw_field(self.viewer, lr_layer, hr_layer, (y, x), size, f"HR field, score {report.score:.2f}")
        self._watch_field()
        self.z_offset.setValue(z)
        if report.located:
            where = f"Found the HR field at LR (z, y, x) = {report.offset}, match score {report.score:.3f} (NCC)."
        else:
            where = f"The rectangle puts the HR field at LR (z, y, x) = {report.offset}: score {report.score:.3f}."
        notes = "".join(f"\n{note}" for note in report.notes)
        self.pair_status.setText(f"{where}{notes}\nMove the rectangle (select mode, drag) to correct it.")
        self._show_offset()

    def _watch_field(self) -> None:
        layer = self.viewer.layers[FIELD_LAYER]
        if layer is not self._watched:
            layer.events.data.connect(self._show_offset)
            self._watched = layer
        self._show_offset()

    def _show_offset(self, *_: Any) -> None:
        offset = self.field_offset()
        if offset is None:
            self.offset_status.setText("Training locates the HR field first.")
        else:
            self.offset_status.setText(f"Training uses the HR field at LR (z, y, x) = {offset}.")

    def field_offset(self) -> tuple[int, int, int] | None:
        """Return the HR field's origin (z, y, x) in LR pixels that training will use (None: located when training)."""
        lr_layer, hr_layer = self.lr_combo.layer(), self.hr_combo.layer()
        if lr_layer is None or hr_layer is None or lr_layer == hr_layer:
            return None
        layer = find_field_layer(self.viewer, lr_layer, hr_layer)
        return None if layer is None else (self.z_offset.value(), *field_offset(layer))

    def _show_noise(self, hr_layer: Any, checked: Any) -> None:
        self._noise = (hr_layer, checked)
        text, ok = noise_summary(checked)
        self.noise_status.setText(text)
        self.noise_status.setToolTip(checked.check.describe())
        self.noise_status.setStyleSheet("" if ok else ERROR_STYLE)

    # -- training -------------------------------------------------------------------------------
    def train(self) -> None:
        """Start training from the base model (problems become notifications)."""
        self._start(resume=False)

    def resume(self) -> None:
        """Continue the run whose last state lies next to the output model file."""
        self._start(resume=True)

    def _start(self, *, resume: bool) -> None:
        from napari.utils.notifications import show_error

        from napari_emsr.training import finetune_pair

        if self._busy():
            return
        try:
            job, resume_step = self._make_job(resume)
        except (ValueError, OSError) as exc:  # LayerError, ConfigError, ModelFileError, PairError are ValueErrors
            show_error(f"Fine-tune: {gui_message(exc)}")
            self.run_panel.status.setText(f"Not started: {gui_message(exc)}")
            return
        if resume:
            self.plots.keep_until(resume_step)
        else:
            self.plots.clear()
        self._running = {"job": job, "lr_layer": self.lr_combo.layer(), "hr_layer": self.hr_combo.layer(),
                         "started": time.perf_counter(), "wall": time.time()}  # fmt: skip
        for button in (self.locate_button, self.resume_button, self.use_button):
            button.setEnabled(False)
        self.settings.collapse(animate=False)  # room for the plots; the settings stay one click away
        self.run_panel.start(lambda: finetune_pair.iter_finetune_pair(job), self._on_event, self._on_end)

    def _make_job(self, resume: bool) -> tuple[Any, int]:
        """Return the library's job for the panel's layers and fields, and the step a resumed run starts from."""
        from napari_emsr.training import FineTuneJob
        from napari_emsr.training.trainer import check_output

        lr_layer, hr_layer = self.lr_combo.layer(), self.hr_combo.layer()
        pair = self._pair(lr_layer, hr_layer)
        base, preset = self._base()
        out = self.form.output()
        config = self.form.config(self.engine.device.value, self.engine.precision.value or "auto")
        offset, resume_step = self.field_offset(), 0
        if resume:
            offset, resume_step = resume_point(out, config.steps, offset)
        elif out.exists() and not self.form.replace.value:  # the library's rule, in this panel's words
            raise FileExistsError(
                f"{out} exists: tick 'Replace an existing model file', choose another name, or Resume it"
            )
        check_output(out, resume=resume, overwrite=self.form.replace.value)
        noise_known = self._noise is not None and self._noise[0] is hr_layer
        source = {"lr": layer_name(lr_layer), "hr": layer_name(hr_layer)}
        provenance: dict[str, Any] = {"data": source, "command": "napari-emsr Fine-tune panel"}
        if base is not None:
            # the trainer loads the file itself (recorded as the base model), leaving the panel's copy untouched
            base = self.engine.model_path()
            shipped = self.engine.zoo_model()
            if shipped is not None:
                provenance["base_zoo_model"] = shipped.name
        job = FineTuneJob(
            dataclasses.replace(pair, offset=offset), out=out, config=config, base=base, preset=preset,
            val_slices=self.form.validation_slices(), resume=resume, overwrite=self.form.replace.value,
            check_noise=not noise_known, previews=True, provenance=provenance,
        )  # fmt: skip
        return job, resume_step

    def _on_event(self, event: Any) -> None:
        kind, running = event.kind, self._running
        assert running is not None  # events only come while a run is going
        if kind == "pair":
            self._show_pair(running["lr_layer"], running["hr_layer"], event.payload)
        elif kind == "noise":
            self._show_noise(running["hr_layer"], event.payload)
        elif kind == "preview":
            self._show_preview(event.payload)
        elif kind in ("step", "validation"):
            self.plots.add(event)
            if kind == "validation":
                v = event.payload
                s, bic = v.scores, v.scores["bicubic"]
                best = " New best model saved." if v.improved else ""
                self.run_panel.status.setText(
                    f"Step {v.step}: validation SSIM {s['ssim']:.4f} (bicubic {bic['ssim']:.4f}), "
                    f"PSNR {s['psnr']:.2f} dB (bicubic {bic['psnr']:.2f}).{best}"
                )
        elif kind == "info" and event.message:
            self.run_panel.status.setText(event.message)

    def _show_preview(self, event: Any) -> None:
        assert self._running is not None  # previews only come while a run is going
        lr_layer = self._running["lr_layer"]
        meta = {"napari_emsr": {"source_layer": lr_layer.name, "preview_step": event.step, "trained": True}}
        layer = self.preview_layer
        if layer is not None and layer in self.viewer.layers and layer.data.shape == event.image.shape:
            layer.data, layer.metadata = event.image, meta
            layer.translate = overlay_transform(lr_layer, event.scale, event.offset)["translate"]
            return
        self.preview_layer = self.viewer.add_image(
            event.image, name=f"{lr_layer.name} fine-tune preview", contrast_limits=lr_layer.contrast_limits,
            colormap=lr_layer.colormap, metadata=meta, **overlay_transform(lr_layer, event.scale, event.offset),
        )  # fmt: skip

    def _on_end(self, outcome: str, error: BaseException | None) -> None:
        running, self._running = self._running, None
        assert running is not None  # the run that ends was started
        out = running["job"].out
        self.plots.draw_now()  # the last steps, not only those of the last throttled draw
        self.locate_button.setEnabled(True)
        self._update_resume()
        if outcome == "done":
            self.trained_model = out
            offered = self._offer(out)
            self.use_button.setEnabled(True)
            self.run_panel.status.setText(trained_message(out, time.perf_counter() - running["started"], offered))
        elif outcome == "cancelled":
            self.run_panel.status.setText(kept_message(out, running["wall"]))
        else:
            failure = gui_message(error) if error is not None else "unknown error"
            self.run_panel.status.setText(f"Failed: {failure}. {kept_message(out, running['wall'], cancelled=False)}")

    def _update_resume(self, *_: Any) -> None:
        from napari_emsr.training import checkpoint_path

        text = self.form.out_path.line_edit.value.strip()
        can = bool(text) and checkpoint_path(self.form.output()).is_file() and not self.run_panel.running
        self.resume_button.setEnabled(can)

    # -- using the result -----------------------------------------------------------------------
    def _offer(self, path: Any) -> bool:
        """Set the trained model in every docked Super-resolve panel; True if there was one."""
        from napari_emsr._napari.super_resolve import SuperResolveWidget

        panels = [w for w in self.viewer.window.dock_widgets.values() if isinstance(w, SuperResolveWidget)]
        for panel in panels:
            panel.engine.set_model_file(path)
        return bool(panels)

    def super_resolve_with_it(self) -> Any:
        """Open (or show) the Super-resolve panel with the trained model and the LR layer chosen."""
        _, panel = self.viewer.window.add_plugin_dock_widget("napari-emsr", "Super-resolve")
        panel.engine.set_model_file(self.trained_model)
        if self.lr_combo.layer() is not None:
            panel.layer_combo.set_layer(self.lr_combo.layer())
        return panel

