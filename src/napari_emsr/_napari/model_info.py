"""Dock widget "Model info": what a model file (or a preset) is, before using it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from napari_emsr.config import PRESETS

if TYPE_CHECKING:
    import napari

_FILE_ITEM = "Model file..."
_DEFAULT_ITEM = "Default model"


class ModelInfoWidget(QWidget):
    """Shows architecture, size, FLOPs, pixel size and provenance of a model file or a preset."""

    def __init__(self, viewer: "napari.viewer.Viewer | None" = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from napari_emsr.model_io import default_model_path

        self.viewer = viewer
        self.default_path = default_model_path()
        self.source = QComboBox()
        if self.default_path is not None:  # the pretrained model shipped with the package comes first
            self.source.addItem(_DEFAULT_ITEM)
        self.source.addItems([f"Preset: {name}" for name in PRESETS] + [_FILE_ITEM])
        self.scale = QComboBox()
        self.scale.addItems(["x1", "x2", "x3", "x4"])
        self.scale.setCurrentText("x3")
        self.browse = QPushButton("Browse...")
        self.text = QPlainTextEdit(readOnly=True)
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
        is_file = choice == _FILE_ITEM
        self.scale.setEnabled(choice.startswith("Preset: "))
        try:
            if choice == _DEFAULT_ITEM:
                info = describe_model(self.default_path)
            elif is_file:
                if self.model_path is None:
                    self._show("", "Choose a model file with Browse...")
                    return
                info = describe_model(self.model_path)
            else:
                info = describe_model(preset=choice.split(": ", 1)[1], scale=int(self.scale.currentText()[1:]))
        except (ModelFileError, ValueError, OSError) as exc:
            self._show("", f"Cannot read this model: {exc}", error=True)
            return
        note = "Trained model." if info["trained"] else "Random weights: an architecture, not a trained model."
        self._show(format_description(info), note, error=not info["trained"])

    def _show(self, text: str, status: str, error: bool = False) -> None:
        self.text.setPlainText(text)
        self.status.setText(status)
        self.status.setStyleSheet("color: #e0a030;" if error else "")
