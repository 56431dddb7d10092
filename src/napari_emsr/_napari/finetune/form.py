"""The training settings of the "Fine-tune" panel as a form, turned into a validated TrainingConfig.

Each field maps to a :class:`napari_emsr.config.TrainingConfig` setting (or to ``emsr finetune``'s
option of the same meaning); the config validates the values once, and its messages become the
panel's error notifications.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

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
    """A learning rate, typed and shown as a plain number (1e-4, 0.0002); the arrows halve / double it."""

    def __init__(self, value: float, minimum: float = 1e-7, maximum: float = 0.5) -> None:
        super().__init__()
        self.setDecimals(12)  # before the range and the value, which are rounded to the decimals
        self.setRange(minimum, maximum)
        self.setValue(value)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt's name)
        return f"{value:.3g}"

    def valueFromText(self, text: str | None) -> float:  # noqa: N802 (Qt's name)
        try:
            return float(text or "")
        except ValueError:
            return self.value()

    def validate(self, text: str | None, pos: int):
        from qtpy.QtGui import QValidator

        try:
            ok = self.minimum() <= float(text or "") <= self.maximum()
        except ValueError:
            ok = False
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate, text, pos)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        self.setValue(self.value() * 2.0**steps)


def _spin(minimum: int, maximum: int, value: int, step: int = 1, tip: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)  # before the value, which the default range would clip
    box.setValue(value)
    box.setSingleStep(step)
    box.setToolTip(tip)
    return box


class TrainingForm(QWidget):
    """Strategy, loss, length, learning rate, validation, patches and the output model file."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.strategy = QComboBox()
        for index, (name, meaning) in enumerate(STRATEGY_ITEMS.items()):
            self.strategy.addItem(name, name)
            self.strategy.setItemData(index, meaning, Qt.ItemDataRole.ToolTipRole)
        self.strategy.setToolTip("how LR inputs are obtained (paper III-B); hover over an item for its meaning")
        self.loss = QComboBox()
        self.loss.addItem("L1 (mean absolute error)", "l1")
        self.loss.addItem("L2 (mean squared error)", "l2")
        for combo in (self.strategy, self.loss):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        self.steps = _spin(1, 10_000_000, 2000, 100, "optimisation steps (a run stops at these or at the time limit)")
        self.minutes = QDoubleSpinBox()
        self.minutes.setDecimals(1)
        self.minutes.setRange(0, 100_000)
        self.minutes.setSingleStep(5)
        self.minutes.setSpecialValueText("no time limit")
        self.minutes.setToolTip("stop after this many minutes of training, whichever comes first")
        self.learning_rate = RateBox(1e-4)
        self.learning_rate.setToolTip("initial Adam learning rate (paper: 1e-4); the arrows halve or double it")
        self.fitted_share = QDoubleSpinBox()
        self.fitted_share.setRange(0.0, 1.0)
        self.fitted_share.setSingleStep(0.1)
        self.fitted_share.setValue(0.5)
        self.fitted_share.setToolTip("with real+fitted: the share of patches whose input is simulated")
        self.consistency = QDoubleSpinBox()
        self.consistency.setRange(0.0, 100.0)
        self.consistency.setSingleStep(0.1)
        self.consistency.setSpecialValueText("off")
        self.consistency.setToolTip(
            "with a fitted strategy: weight of l(D(f(y)), y) on LR patches outside the HR field (D the fitted "
            "degradation); 0 is off"
        )
        self.strategy.currentIndexChanged.connect(self._strategy_changed)
        self.val_slices = QLineEdit(placeholderText="last 10 % of the HR slices")  # type: ignore[call-overload]
        self.val_slices.setToolTip(
            "held-out HR slices for validation, never trained on: last:3, first:2, 40:50 or 3,7,9 (indices of the "
            "HR stack)"
        )
        self.val_every = _spin(1, 1_000_000, 250, 50, "validate (and keep the best model) every N steps")
        self.patch = _spin(8, 1024, 48, 8, "LR patch size in pixels (HR patches are scale times larger)")
        self.batch = _spin(1, 256, 2, 1, "patches per step (paper: 2)")
        self.out_path = QLineEdit(placeholderText="model file to write (.safetensors)")  # type: ignore[call-overload]
        self.browse = QPushButton("Browse...")
        self.replace = QCheckBox("Replace an existing model file")
        self.browse.clicked.connect(self._choose_output)
        self._layout()
        self._strategy_changed()

    def _strategy_changed(self, *_: Any) -> None:
        fitted = self.strategy.currentData() in ("fitted", "real+fitted")
        self.fitted_share.setEnabled(self.strategy.currentData() == "real+fitted")
        self.consistency.setEnabled(fitted)

    def _layout(self) -> None:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.out_path, 1)
        row.addWidget(self.browse)
        length = QHBoxLayout()
        length.setContentsMargins(0, 0, 0, 0)
        length.addWidget(self.steps, 1)
        length.addWidget(self.minutes, 1)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Strategy", self.strategy)
        form.addRow("Fitted share / consistency", self._pair(self.fitted_share, self.consistency))
        form.addRow("Loss", self.loss)
        form.addRow("Steps / time", length)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Validation", self.val_slices)
        form.addRow("Validate every", self.val_every)
        form.addRow("Patch / batch", self._pair(self.patch, self.batch))
        form.addRow("Output", row)
        form.addRow("", self.replace)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)

    @staticmethod
    def _pair(a: QWidget, b: QWidget) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(a, 1)
        row.addWidget(b, 1)
        return row

    def _choose_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the fine-tuned model as", "", "EMSR models (*.safetensors)")
        if path:
            self.out_path.setText(path if path.endswith(".safetensors") else path + ".safetensors")
            self.replace.setChecked(Path(self.out_path.text()).exists())  # the dialog asked before replacing

    def config(self, device: str) -> Any:
        """Return the validated :class:`~napari_emsr.config.TrainingConfig` (ConfigError, a ValueError, if not)."""
        from napari_emsr.config import TrainingConfig

        return TrainingConfig(
            strategy=self.strategy.currentData(), steps=self.steps.value(), minutes=self.minutes.value() or None,
            batch=self.batch.value(), patch=self.patch.value(), learning_rate=self.learning_rate.value(),
            loss=self.loss.currentData(), val_every=self.val_every.value(), device=device,
            fitted_share=self.fitted_share.value(),
            lambda_consistency=self.consistency.value() if self.consistency.isEnabled() else 0.0,
        )  # fmt: skip

    def validation_slices(self) -> str | None:
        """Return the held-out slice spec, or None for the default (the last ~10 %)."""
        return self.val_slices.text().strip() or None

    def output(self) -> Path:
        """Return the model file to write (``.safetensors`` added if the name lacks it); ValueError if none is given."""
        text = self.out_path.text().strip()
        if not text:
            raise ValueError("choose where to save the model: Output (Browse...)")
        return Path(text if text.endswith(".safetensors") else text + ".safetensors").expanduser()
