"""The engine's options as a form: model (default or file), device, tile, overlap, self-ensemble.

Shared by the "Super-resolve" and "Export" dock widgets; what it returns goes straight to
:func:`napari_emsr.iter_super_resolve`. The "Fine-tune" widget uses its model and device rows only
(``inference=False``) and adds new networks of named presets as starting points (``presets=``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

__all__ = [
    "EngineOptions",
    "model_summary",
    "explain_memory_errors",
    "engine_pixel_size",
    "NO_DEFAULT_MODEL",
    "WARNING_STYLE",
    "ERROR_STYLE",
]

_FILE_ITEM = "Model file..."
_PRESET_ITEM = "New {} network (random weights)"
NO_DEFAULT_MODEL = (
    "No pretrained default model ships with this version of napari-emsr yet: choose a model file "
    "(.safetensors), e.g. one made with `emsr train` or `emsr finetune`."
)
WARNING_STYLE = "color: #e0a030; font-weight: bold;"
ERROR_STYLE = "color: #e05050;"


def _available_devices() -> list[tuple[str, str | None]]:
    """(device, why it is unavailable or None) for auto, cpu, each CUDA GPU and MPS."""
    import torch

    from napari_emsr.device import select_device

    names = ["auto", "cpu", "cuda"]
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    names.append("mps")
    found = []
    for name in names:
        try:
            select_device(name)
            found.append((name, None))
        except ValueError as exc:
            found.append((name, str(exc)))
    return found


class OverlapBox(QSpinBox):
    """Tile overlap: "auto" (the engine's measured halo, the default), "exact", or pixels."""

    AUTO, EXACT = -2, -1
    _TEXT = {AUTO: "auto (measured effective radius)", EXACT: "exact (receptive radius)"}

    def __init__(self) -> None:
        super().__init__(minimum=self.AUTO, maximum=1024, singleStep=8, value=self.AUTO)

    def textFromValue(self, value: int) -> str:  # noqa: N802 (Qt's name)
        return self._TEXT.get(value, str(value))

    def valueFromText(self, text: str) -> int:  # noqa: N802 (Qt's name)
        for value, label in self._TEXT.items():
            if text.strip() and label.startswith(text.strip().split()[0]):
                return value
        return int(text) if text.strip().lstrip("-").isdigit() else self.AUTO

    def validate(self, text: str, pos: int):
        from qtpy.QtGui import QValidator

        ok = text.strip().isdigit() or any(label.startswith(text.strip()) for label in self._TEXT.values())
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate, text, pos)

    def engine_value(self) -> int | str:
        return {self.AUTO: "auto", self.EXACT: "exact"}.get(self.value(), self.value())


class EngineOptions(QWidget):
    """Model source, device, tile size, overlap and self-ensemble, with what each resolves to."""

    def __init__(
        self, parent: QWidget | None = None, *, presets: tuple[str, ...] = (), inference: bool = True
    ) -> None:
        super().__init__(parent)
        from napari_emsr.model_io import default_model_path

        self.default_path = default_model_path()
        self.inference = inference
        self.source = QComboBox()
        if self.default_path is not None:
            self.source.addItem(f"Default model ({self.default_path.stem})")
        self.source.addItem(_FILE_ITEM)
        for name in presets:
            self.source.addItem(_PRESET_ITEM.format(name), name)
        self.path = QLineEdit(placeholderText="a .safetensors model file")
        self.browse = QPushButton("Browse...")
        self.model_status = QLabel(wordWrap=True)
        self.device = QComboBox()
        self.device_status = QLabel(wordWrap=True)
        self.tile = QSpinBox(minimum=0, maximum=8192, singleStep=64, value=0)
        self.tile.setSpecialValueText("auto (256 CPU, 1024 GPU)")
        self.tile.setToolTip("Core of a tile in input pixels; larger tiles waste less on halos but need more memory.")
        self.overlap = OverlapBox()
        self.overlap.setToolTip(
            "Context around each tile in input pixels. 'auto': the network's measured effective radius (within "
            "about a quarter grey level of a whole-slice prediction); 'exact' equals a whole-slice prediction at "
            "1.5-2x the cost; a number of pixels: smaller is faster and approximate (the cross-fade hides the seams)."
        )
        self.self_ensemble = QCheckBox("Self-ensemble (8 flips / rotations, 8x slower)")
        self._loaded: tuple[tuple, Any] | None = None
        self._fill_devices()
        self._layout()
        self.source.currentTextChanged.connect(self.refresh)
        self.path.editingFinished.connect(self.refresh)
        self.browse.clicked.connect(self._choose_file)
        self.device.currentIndexChanged.connect(self._show_device)
        self.refresh()

    def _layout(self) -> None:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Model", self.source)
        form.addRow("", row)
        form.addRow("", self.model_status)
        form.addRow("Device", self.device)
        form.addRow("", self.device_status)
        if not self.inference:
            for widget in (self.tile, self.overlap, self.self_ensemble):
                widget.setParent(self)
                widget.hide()
            return
        form.addRow("Tile", self.tile)
        form.addRow("Overlap", self.overlap)
        form.addRow("", self.self_ensemble)

    def _fill_devices(self) -> None:
        for name, problem in _available_devices():
            self.device.addItem(name if problem is None else f"{name} (not available)", name)
            if problem is not None:
                item = self.device.model().item(self.device.count() - 1)
                item.setEnabled(False)
                item.setToolTip(problem)
        self._show_device()

    def _show_device(self, *_: Any) -> None:
        from napari_emsr.device import select_device

        choice = self.device.currentData()
        items = range(self.device.count())
        present = [self.device.itemData(i) for i in items if self.device.model().item(i).isEnabled()]
        found = ", ".join(d for d in present if d != "auto")
        try:
            used = str(select_device(choice))
        except ValueError as exc:  # a device that went away since the list was made
            self.device_status.setText(str(exc))
            self.device_status.setStyleSheet(ERROR_STYLE)
            return
        self.device_status.setStyleSheet("")
        self.device_status.setText(f"Uses {used}. Available here: {found}.")

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an EMSR model", "", "EMSR models (*.safetensors)")
        if path:
            self.set_model_file(path)

    def set_model_file(self, path: str | Path) -> None:
        """Use the model file at ``path`` (its description or problem is shown, not raised)."""
        self.path.setText(str(path))
        if self.source.currentText() != _FILE_ITEM:
            self.source.setCurrentText(_FILE_ITEM)  # triggers refresh
        else:
            self.refresh()

    def new_preset(self) -> str | None:
        """The preset of a new (random-weight) network when one is chosen, else None."""
        return self.source.currentData()

    def model_path(self) -> Path | None:
        """The chosen model file (the default model's path when that is chosen; None for a new network)."""
        if self.new_preset() is not None:
            return None
        if self.source.currentText() != _FILE_ITEM:
            return self.default_path
        text = self.path.text().strip()
        return Path(text).expanduser() if text else None

    def model(self) -> Any:
        """The chosen model, loaded once per file version.

        Raises
        ------
        napari_emsr.ModelFileError
            If the file cannot be used (missing, foreign, corrupt); ValueError if none is chosen.
        """
        from napari_emsr.model_io import load_model

        path = self.model_path()
        if path is None:
            raise ValueError(f"no model chosen. {NO_DEFAULT_MODEL}")
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None
            self._loaded = (key, load_model(path))
        return self._loaded[1]

    def refresh(self, *_: Any) -> None:
        """Load the chosen model and say what it is (a problem is shown here, not raised)."""
        from napari_emsr.model_io import ModelFileError

        is_file = self.source.currentText() == _FILE_ITEM
        self.path.setVisible(is_file)
        self.browse.setVisible(is_file)
        if self.new_preset() is not None:
            self._status(
                f"A new '{self.new_preset()}' network from random weights, at the scale of the pair's pixel sizes.", ""
            )
            return
        if is_file and not self.path.text().strip():
            hint = NO_DEFAULT_MODEL if self.default_path is None else "Choose a model file with Browse..."
            self._status(hint, "")
            return
        try:
            model = self.model()
        except (ModelFileError, ValueError, OSError) as exc:
            self._status(f"Cannot use this model: {exc}", ERROR_STYLE)
            return
        self._status(*model_summary(model))

    def _status(self, text: str, style: str) -> None:
        self.model_status.setText(text)
        self.model_status.setStyleSheet(style)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`napari_emsr.iter_super_resolve` (model aside)."""
        return {
            "device": self.device.currentData(),
            "tile": self.tile.value() or None,
            "overlap": self.overlap.engine_value(),
            "self_ensemble": self.self_ensemble.isChecked(),
        }


def model_summary(model: Any) -> tuple[str, str]:
    """(one line on what the model is, style): random weights are a visible warning."""
    meta, config = model.metadata, model.config
    preset = getattr(config, "preset_name", None) or "custom"
    what = f"EMSR {preset}, x{config.scale}"
    if meta.input_pixel_size_nm:
        size = meta.input_pixel_size_nm
        what += f", for {size:g} nm input pixels (-> {size / config.scale:g} nm)"
    if not meta.trained:
        return (
            f"RANDOM WEIGHTS, not a trained model ({what}): its output is noise, not a super-resolution "
            "result; use it only to test the pipeline.",
            WARNING_STYLE,
        )
    return f"Trained model: {meta.name + ', ' if meta.name else ''}{what}.", ""


def engine_pixel_size(sizes: tuple[float | None, ...] | None) -> Any:
    """A layer's pixel size as the engine takes it: one per axis, one for y and x, or None."""
    if sizes is None or None in sizes[-2:]:
        return None
    if None not in sizes:
        return tuple(sizes)
    return sizes[-1] if sizes[-1] == sizes[-2] else None


def explain_memory_errors(events: Iterator[Any]) -> Iterator[Any]:
    """The engine's events, with an out-of-memory error's advice given in the panels' terms."""
    try:
        yield from events
    except MemoryError as exc:
        raise MemoryError(
            f"out of memory ({exc or 'no detail'}). Choose a smaller tile, the cpu device, the current slice or "
            "the region in view; or use Export to write the result to disk slice by slice"
        ) from exc
