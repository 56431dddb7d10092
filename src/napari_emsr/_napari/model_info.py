"""Dock widget "Model info": what a shipped (zoo) model, a model file or a preset is, before using it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_emsr.config import PRESETS

if TYPE_CHECKING:
    import napari

_FILE_ITEM = "Model file..."
_PRESET_PREFIX = "Preset: "


class ModelInfoWidget(QWidget):
    """Shows architecture, size, FLOPs, pixel size and provenance of a zoo model, a model file or a preset."""

    def __init__(self, viewer: "napari.viewer.Viewer | None" = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from qtpy.QtCore import Qt

        from napari_emsr._napari.common.zoo_choices import first_choice, shipped_choices

        self.viewer = viewer
        self.shipped = shipped_choices()  # every zoo model by name; the default model is shown first
        first = first_choice(self.shipped)
        self.default_path = self.shipped[first].path if first is not None else None
        self.source = QComboBox()
        for index, choice in enumerate(self.shipped):
            self.source.addItem(choice.label, index)
            self.source.setItemData(index, choice.tooltip, Qt.ItemDataRole.ToolTipRole)
        self.source.addItems([f"{_PRESET_PREFIX}{name}" for name in PRESETS] + [_FILE_ITEM])
        if first is not None:
            self.source.setCurrentIndex(first)
        self.scale = QComboBox()
        self.scale.addItems(["x1", "x2", "x3", "x4"])
        self.scale.setCurrentText("x3")
        self.browse = QPushButton("Browse...")
        self.text = QPlainTextEdit(readOnly=True)  # type: ignore[call-overload]
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.model_path: Path | None = None

        row = QHBoxLayout()
        row.addWidget(self.source, 1)
        row.addWidget(self.scale)
        row.addWidget(self.browse)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.text, 1)

        self.source.currentTextChanged.connect(self.refresh)
        self.scale.currentTextChanged.connect(self.refresh)
        self.browse.clicked.connect(self._choose_file)
        self.refresh()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an EMSR model", "", "EMSR models (*.safetensors)")
        if path:
            self.show_file(path)

    def show_zoo_model(self, name: str) -> None:
        """Describe the shipped model called ``name`` (``"default"``: the default model); KeyError if none."""
        for index, choice in enumerate(self.shipped):
            if choice.name == name or (name == "default" and choice.first):
                self.source.setCurrentIndex(index)  # triggers refresh
                return
        names = ", ".join(c.name for c in self.shipped if c.name) or "none"
        raise KeyError(f"no shipped model called {name!r}; the zoo has: {names}")

    def show_file(self, path: str | Path) -> None:
        """Describe the model file at ``path`` (errors are shown in the widget, not raised)."""
        self.model_path = Path(path)
        if self.source.currentText() != _FILE_ITEM:
            self.source.setCurrentText(_FILE_ITEM)  # triggers refresh
        else:
            self.refresh()

    def refresh(self) -> None:
        from napari_emsr.describe import describe_model, format_description
        from napari_emsr.model_io import ModelFileError

        choice = self.source.currentText()
        shipped = self.source.currentData()
        is_file = choice == _FILE_ITEM
        self.scale.setEnabled(choice.startswith(_PRESET_PREFIX))
        zoo_lines = ""
        try:
            if shipped is not None:
                entry = self.shipped[shipped]
                info = describe_model(entry.path)
                zoo_lines = _zoo_lines(entry.zoo) if entry.zoo is not None else ""
            elif is_file:
                if self.model_path is None:
                    self._show("", "Choose a model file with Browse...")
                    return
                info = describe_model(self.model_path)
            else:
                preset = choice[len(_PRESET_PREFIX):]
                info = describe_model(preset=preset, scale=int(self.scale.currentText()[1:]))
        except (ModelFileError, ValueError, OSError) as exc:
            self._show("", f"Cannot read this model: {exc}", error=True)
            return
        note = "Trained model." if info["trained"] else "Random weights: an architecture, not a trained model."
        self._show(zoo_lines + format_description(info), note, error=not info["trained"])

    def _show(self, text: str, status: str, error: bool = False) -> None:
        self.text.setPlainText(text)
        self.status.setText(status)
        self.status.setStyleSheet("color: #e0a030;" if error else "")


def _zoo_lines(model: Any) -> str:
    """Return what the zoo says of a shipped model, above the file's own description."""
    valid = model.valid_input_pixel_size_nm
    default = f"yes, the model used for x{model.scale} when none is given" if model.is_default else "no"
    return (
        f"zoo name:     {model.name}\n"
        f"valid input:  {f'{valid[0]:g}-{valid[1]:g} nm (measured)' if valid else 'not measured'}\n"
        f"default:      {default}\n"
        f"model card:   {model.card or '-'}\n"
    )
