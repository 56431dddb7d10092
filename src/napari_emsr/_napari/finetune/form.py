"""The training settings of the "Fine-tune" panel as a form, turned into a validated TrainingConfig.

Each field maps to a :class:`napari_emsr.config.TrainingConfig` setting (or to ``emsr finetune``'s
option of the same meaning); the config validates the values once, and its messages become the
panel's error notifications. The fields are magicgui widgets (``.native`` for per-item tooltips,
special texts and placeholders, which magicgui has no word for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QVBoxLayout, QWidget

from napari_emsr._napari.common.engine_options import row, spin_widget

__all__ = ["TrainingForm", "RateBox", "STRATEGY_ITEMS"]

#: TrainingConfig.strategy (paper III-B) -> what it means; the pair's own LR first
STRATEGY_ITEMS = {
    "real": "the LR layer is the input, the HR layer the reference",
    "real+fitted": "a share of the inputs is the LR layer, the rest simulated from the HR layer through the "
    "degradation fitted to the pair (Fit degradation shows it)",
    "fitted": "inputs simulated from the HR layer through the degradation fitted to the pair",
    "denoised": "the LR layer is the input, the HR layer denoised first (non-local means) the reference",
    "synthetic-ii": "inputs made from the HR layer: blur, noise, bicubic down-sampling, noise (LR layer not used)",
    "synthetic-i": "inputs made from the HR layer by bicubic down-sampling (the LR layer is not used)",
}


class RateBox(QDoubleSpinBox):
    """A learning rate, typed and shown as a plain number (1e-4, 0.0002); the arrows halve / double it.

    Custom Qt (the native widget of a magicgui spin box, see :func:`spin_widget`): magicgui's
    FloatSpinBox shows fixed decimals and steps by adding.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(12)  # before the range and the value, which are rounded to the decimals

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt's name)
        return f"{value:.3g}"

    def valueFromText(self, text: str | None) -> float:  # noqa: N802 (Qt's name)
        try:
            return float(text or "")
        except ValueError:
            return self.value()

    def validate(self, text: str | None, pos: int):
        try:
            ok = self.minimum() <= float(text or "") <= self.maximum()
        except ValueError:
            ok = False
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate, text, pos)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        self.setValue(self.value() * 2.0**steps)


#: the fields' tooltips
_TIPS = {
    "strategy": "how LR inputs are obtained (paper III-B); hover over an item for its meaning",
    "steps": "optimisation steps (a run stops at these or at the time limit)",
    "minutes": "stop after this many minutes of training, whichever comes first",
    "learning_rate": "initial Adam learning rate (paper: 1e-4); the arrows halve or double it",
    "schedule": "how the learning rate changes: step (the paper's: halved every 50 000 steps, so constant in a "
    "fine-tune) or cosine (down to 1 % of it by the last step, or by the end of the time limit)",
    "ema": "keep a moving average of the weights with this decay (e.g. 0.995) and validate and save the "
    "average; off: the weights of the step",
    "fitted_share": "with real+fitted: the share of patches whose input is simulated",
    "consistency": "with a fitted strategy: weight of l(D(f(y)), y) on LR patches outside the HR field (D the "
    "fitted degradation); 0 is off",
    "val_slices": "held-out HR slices for validation, never trained on: last:3, first:2, 40:50 or 3,7,9 (indices "
    "of the HR stack)",
    "val_every": "validate (and keep the best model) every N steps",
    "keep_by": "which validation's model is kept: the highest SSIM + mean FRC (sharper models win near-ties in "
               "SSIM), or the highest SSIM alone",
    "patch": "LR patch size in pixels (HR patches are scale times larger)",
    "batch": "patches per step (paper: 2)",
}
_MODELS = "EMSR models (*.safetensors)"  # the save dialog's filter
_LOSSES = [("L1 (mean absolute error)", "l1"), ("L2 (mean squared error)", "l2")]
_SCHEDULES = [("step (paper)", "step"), ("cosine", "cosine")]
_KEEP_BY = [("SSIM + FRC", "ssim+frc"), ("SSIM", "ssim")]


class TrainingForm(QWidget):
    """Strategy, loss, length, learning rate and its schedule, validation, patches and the output model file.

    A QWidget holding a magicgui Container, as :class:`~._napari.common.engine_options.EngineOptions`.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.strategy = ComboBox(label="Strategy", choices=list(STRATEGY_ITEMS))
        for index, meaning in enumerate(STRATEGY_ITEMS.values()):
            self.strategy.native.setItemData(index, meaning, Qt.ItemDataRole.ToolTipRole)
        self.loss = ComboBox(label="Loss", choices=_LOSSES)
        for combo in (self.strategy, self.loss):
            combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.native.setMinimumContentsLength(10)
        self.steps = SpinBox(value=2000, min=1, max=10_000_000, step=100)
        self.minutes = FloatSpinBox(value=0, min=0, max=100_000, step=5)
        self.minutes.native.setDecimals(1)
        self.minutes.native.setSpecialValueText("no time limit")
        self.learning_rate = spin_widget(RateBox, label="Learning rate", value=1e-4, min=1e-7, max=0.5)
        self.schedule = ComboBox(choices=_SCHEDULES)
        self.ema = FloatSpinBox(value=0.0, min=0.0, max=0.9999, step=0.001)
        self.ema.native.setDecimals(4)
        self.ema.native.setSpecialValueText("no averaging")
        self.fitted_share = FloatSpinBox(value=0.5, min=0.0, max=1.0, step=0.1)
        self.consistency = FloatSpinBox(value=0.0, min=0.0, max=100.0, step=0.1)
        self.consistency.native.setSpecialValueText("off")
        self.val_slices = LineEdit(label="Validation")
        self.val_slices.native.setPlaceholderText("last 10 % of the HR slices")
        self.val_every = SpinBox(value=250, min=1, max=1_000_000, step=50)
        self.keep_by = ComboBox(choices=_KEEP_BY)
        self.patch = SpinBox(value=48, min=8, max=1024, step=8)
        self.batch = SpinBox(value=2, min=1, max=256, step=1)
        for name, tip in _TIPS.items():
            getattr(self, name).tooltip = tip
        self.out_path = FileEdit(label="Output", mode=FileDialogMode.OPTIONAL_FILE, filter=_MODELS, nullable=True)
        self.out_path.line_edit.native.setPlaceholderText("model file to write (.safetensors)")
        self.out_path.choose_btn.text = "Browse..."
        self.replace = CheckBox(text="Replace an existing model file")
        form: Container = Container()
        form.extend([  # added once made, so that the labels get one width
            self.strategy, row("Fitted share / consistency", self.fitted_share, self.consistency), self.loss,
            row("Steps / time", self.steps, self.minutes), self.learning_rate,
            row("Schedule / average", self.schedule, self.ema), self.val_slices,
            row("Validate every / keep by", self.val_every, self.keep_by),
            row("Patch / batch", self.patch, self.batch), self.out_path, row("", self.replace),
        ])  # fmt: skip
        form.margins = (0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(form.native)
        layout.addStretch()  # rows at their heights, as in a form layout
        self.strategy.changed.connect(self._strategy_changed)
        # around FileEdit's own save dialog (the higher priority is called first), see _chosen
        self.out_path.choose_btn.changed.connect(self._before_dialog, priority=1)
        self.out_path.choose_btn.changed.connect(self._chosen)
        self._typed = ""
        self._strategy_changed()

    def _strategy_changed(self, *_: Any) -> None:
        self.fitted_share.enabled = self.strategy.value == "real+fitted"
        self.consistency.enabled = self.strategy.value in ("fitted", "real+fitted")

    def _before_dialog(self, *_: Any) -> None:
        self._typed = self.out_path.line_edit.value

    def _chosen(self, *_: Any) -> None:
        """Add the suffix to a file chosen in the dialog; tick Replace if it exists (the dialog asked)."""
        if self.out_path.line_edit.value != self._typed:  # else the dialog was cancelled
            self.out_path.value = self.output()
            self.replace.value = self.output().exists()

    def config(self, device: str, precision: str = "auto") -> Any:
        """Return the validated :class:`~napari_emsr.config.TrainingConfig` (ConfigError, a ValueError, if not).

        ``device`` and ``precision`` come from the panel's engine options.
        """
        from napari_emsr.config import TrainingConfig

        return TrainingConfig(
            strategy=self.strategy.value, steps=self.steps.value, minutes=self.minutes.value or None,
            batch=self.batch.value, patch=self.patch.value, learning_rate=self.learning_rate.value,
            schedule=self.schedule.value, ema=self.ema.value,
            loss=self.loss.value, val_every=self.val_every.value, keep_by=self.keep_by.value, device=device,
            precision=precision,
            fitted_share=self.fitted_share.value,
            lambda_consistency=self.consistency.value if self.consistency.enabled else 0.0,
        )  # fmt: skip

    def validation_slices(self) -> str | None:
        """Return the held-out slice spec, or None for the default (the last ~10 %)."""
        return self.val_slices.value.strip() or None

    def output(self) -> Path:
        """Return the model file to write (``.safetensors`` added if the name lacks it); ValueError if none is given."""
        text = self.out_path.line_edit.value.strip()
        if not text:
            raise ValueError("choose where to save the model: Output (Browse...)")
        return Path(text if text.endswith(".safetensors") else text + ".safetensors").expanduser()
