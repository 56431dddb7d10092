"""The engine's options as a form: model (a shipped zoo model or a file), device, tile, overlap, self-ensemble.

Shared by the "Super-resolve" and "Export" dock widgets; :meth:`EngineOptions.options` builds the
:class:`napari_emsr.PredictOptions` that goes straight to :func:`napari_emsr.iter_super_resolve`.
The model choice lists every model of the zoo by name
(``em-x3 (x3, 30 nm, default)``, see ``_zoo_choices``), the default model chosen first, then a model
file. The "Fine-tune" widget uses its model and device rows only (``inference=False``) and adds new
networks of named presets as starting points (``presets=``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from napari_emsr.predict.options import PredictOptions

__all__ = [
    "EngineOptions",
    "model_summary",
    "engine_pixel_size",
    "NO_DEFAULT_MODEL",
    "FILE_ITEM",
    "WARNING_STYLE",
    "ERROR_STYLE",
]

FILE_ITEM = "Model file..."
_PRESET_ITEM = "New {} network (random weights)"
_FILE_KEY, _ZOO_KEY, _PRESET_KEY = "file", "zoo:", "preset:"
NO_DEFAULT_MODEL = (
    "No pretrained model ships with this build of napari-emsr: choose a model file "
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
    found: list[tuple[str, str | None]] = []
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
        super().__init__(minimum=self.AUTO, maximum=1024, singleStep=8, value=self.AUTO)  # type: ignore[call-arg]

    def textFromValue(self, value: int) -> str:  # noqa: N802 (Qt's name)
        return self._TEXT.get(value, str(value))

    def valueFromText(self, text: str | None) -> int:  # noqa: N802 (Qt's name)
        text = text or ""
        for value, label in self._TEXT.items():
            if text.strip() and label.startswith(text.strip().split()[0]):
                return value
        return int(text) if text.strip().lstrip("-").isdigit() else self.AUTO

    def validate(self, text: str | None, pos: int):
        from qtpy.QtGui import QValidator

        text = text or ""
        ok = text.strip().isdigit() or any(label.startswith(text.strip()) for label in self._TEXT.values())
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate, text, pos)

    def engine_value(self) -> int | str:
        return {self.AUTO: "auto", self.EXACT: "exact"}.get(self.value(), self.value())


#: the Precision choices (label -> PredictOptions.precision)
PRECISION_ITEMS = {"auto": "auto", "fp32": "fp32", "bf16": "bf16", "fp16 (CUDA)": "fp16"}


class EngineOptions(QWidget):
    """Model source, device, tile size, overlap and self-ensemble, with what each resolves to."""

    def __init__(
        self, parent: QWidget | None = None, *, presets: tuple[str, ...] = (), inference: bool = True
    ) -> None:
        super().__init__(parent)
        from qtpy.QtCore import Qt

        from napari_emsr._napari.common.zoo_choices import first_choice, shipped_choices

        self.shipped = shipped_choices()
        first = first_choice(self.shipped)
        #: the model used when none is chosen (the zoo's default), or None when none ships
        self.default_path = self.shipped[first].path if first is not None else None
        self.inference = inference
        self.source = QComboBox()
        self.source.setToolTip("a shipped model (see Model info, or `emsr info --zoo`), a model file, or a new network")
        for index, choice in enumerate(self.shipped):
            self.source.addItem(choice.label, f"{_ZOO_KEY}{index}")
            self.source.setItemData(index, choice.tooltip, Qt.ItemDataRole.ToolTipRole)
        self.source.addItem(FILE_ITEM, _FILE_KEY)
        for name in presets:
            self.source.addItem(_PRESET_ITEM.format(name), f"{_PRESET_KEY}{name}")
        if first is not None:
            self.source.setCurrentIndex(first)
        self.path = QLineEdit(placeholderText="a .safetensors model file")  # type: ignore[call-overload]
        self.browse = QPushButton("Browse...")
        self.model_status = QLabel(wordWrap=True)  # type: ignore[call-overload]
        self.device = QComboBox()
        self.device_status = QLabel(wordWrap=True)  # type: ignore[call-overload]
        self.tile = QSpinBox(minimum=0, maximum=8192, singleStep=64, value=0)  # type: ignore[call-arg]
        self.tile.setSpecialValueText("auto (256 CPU, 1024 GPU)")
        self.tile.setToolTip("Core of a tile in input pixels; larger tiles waste less on halos but need more memory.")
        self.overlap = OverlapBox()
        self.overlap.setToolTip(
            "Context around each tile in input pixels. 'auto': the network's measured effective radius (within "
            "about a quarter grey level of a whole-slice prediction); 'exact' equals a whole-slice prediction at "
            "1.5-2x the cost; a number of pixels: smaller is faster and approximate (the cross-fade hides the seams)."
        )
        self.self_ensemble = QCheckBox("Self-ensemble (8 flips / rotations, 8x slower)")
        self.precision = QComboBox()
        for label, value in PRECISION_ITEMS.items():
            self.precision.addItem(label, value)
        self.precision.setToolTip(
            "arithmetic of the network: auto takes bf16 on GPUs that have it and on CPUs with AMX-BF16 (about 2x "
            "faster, output within 0.001 dB of fp32), fp32 elsewhere"
        )
        self._loaded: tuple[tuple, Any] | None = None
        self._fill_devices()
        self._layout()
        self.source.currentIndexChanged.connect(self.refresh)
        self.path.editingFinished.connect(self.refresh)
        self.browse.clicked.connect(self._choose_file)
        self.device.currentIndexChanged.connect(self._show_device)
        self.precision.currentIndexChanged.connect(self._show_device)
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
            for widget in (self.tile, self.overlap, self.self_ensemble, self.precision):
                widget.setParent(self)
                widget.hide()
            return
        form.addRow("Tile", self.tile)
        form.addRow("Overlap", self.overlap)
        form.addRow("Precision", self.precision)
        form.addRow("", self.self_ensemble)

    def _device_item(self, index: int) -> Any:
        from qtpy.QtGui import QStandardItemModel

        model = self.device.model()
        assert isinstance(model, QStandardItemModel)  # a QComboBox's own model
        return model.item(index)

    def _fill_devices(self) -> None:
        for name, problem in _available_devices():
            self.device.addItem(name if problem is None else f"{name} (not available)", name)
            if problem is not None:
                item = self._device_item(self.device.count() - 1)
                item.setEnabled(False)
                item.setToolTip(problem)
        self._show_device()

    def _show_device(self, *_: Any) -> None:
        from napari_emsr.device import select_device

        choice = self.device.currentData()
        items = range(self.device.count())
        present = [self.device.itemData(i) for i in items if self._device_item(i).isEnabled()]
        found = ", ".join(d for d in present if d != "auto")
        try:
            used = str(select_device(choice))
        except ValueError as exc:  # a device that went away since the list was made
            self.device_status.setText(str(exc))
            self.device_status.setStyleSheet(ERROR_STYLE)
            return
        from napari_emsr.device import resolve_precision

        try:
            precision, why = resolve_precision(self.precision.currentData() or "auto", select_device(choice))
            arithmetic = f", {precision} ({why})"
        except ValueError as exc:  # e.g. fp16 on the CPU: said here, refused when run
            arithmetic = f"; {exc}"
        self.device_status.setStyleSheet("")
        self.device_status.setText(f"Uses {used}{arithmetic}. Available here: {found}.")

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an EMSR model", "", "EMSR models (*.safetensors)")
        if path:
            self.set_model_file(path)

    def set_model_file(self, path: str | Path) -> None:
        """Use the model file at ``path`` (its description or problem is shown, not raised)."""
        self.path.setText(str(path))
        if not self._file_chosen():
            self.source.setCurrentIndex(self.source.findData(_FILE_KEY))  # triggers refresh
        else:
            self.refresh()

    def zoo_names(self) -> list[str]:
        """Return the zoo names offered, in order (a default model outside the zoo is not among them)."""
        return [c.name for c in self.shipped if c.name is not None]

    def set_zoo_model(self, name: str) -> None:
        """Choose the shipped model called ``name`` (``"default"``: the default model); KeyError if none."""
        for index, choice in enumerate(self.shipped):
            if choice.name == name or (name == "default" and choice.first):
                self.source.setCurrentIndex(index)  # triggers refresh
                return
        raise KeyError(f"no shipped model called {name!r}; the zoo has: {', '.join(self.zoo_names()) or 'none'}")

    def shipped_choice(self) -> Any:
        """Return the chosen shipped model (a ``_zoo_choices.ShippedChoice``), or None for a file or a new network."""
        key = self.source.currentData() or ""
        return self.shipped[int(key[len(_ZOO_KEY):])] if key.startswith(_ZOO_KEY) else None

    def zoo_model(self) -> Any:
        """Return the chosen zoo model (``napari_emsr.zoo.ZooModel``), or None."""
        choice = self.shipped_choice()
        return None if choice is None else choice.zoo

    def _file_chosen(self) -> bool:
        return self.source.currentData() == _FILE_KEY

    def new_preset(self) -> str | None:
        """Return the preset of a new (random-weight) network when one is chosen, else None."""
        key = self.source.currentData() or ""
        return key[len(_PRESET_KEY):] if key.startswith(_PRESET_KEY) else None

    def model_path(self) -> Path | None:
        """Return the chosen model file (a shipped model's own file when one is chosen; None for a new network)."""
        choice = self.shipped_choice()
        if choice is not None:
            return choice.path
        if not self._file_chosen():
            return None
        text = self.path.text().strip()
        return Path(text).expanduser() if text else None

    def model(self) -> Any:
        """Return the chosen model, loaded once per file version.

        Raises
        ------
        napari_emsr.ModelFileError
            If the file cannot be used (missing, foreign, corrupt); ValueError if none is chosen.
        """
        from napari_emsr.model_io import load_model

        path = self.model_path()
        if path is None:
            raise ValueError(
                f"no model chosen. {NO_DEFAULT_MODEL}" if not self.shipped
                else "no model chosen: choose a shipped model or a model file (Browse...)"
            )  # fmt: skip
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None
            self._loaded = (key, load_model(path))
        return self._loaded[1]

    def refresh(self, *_: Any) -> None:
        """Load the chosen model and say what it is (a problem is shown here, not raised)."""
        from napari_emsr.model_io import ModelFileError

        is_file = self._file_chosen()
        self.path.setVisible(is_file)
        self.browse.setVisible(is_file)
        if self.new_preset() is not None:
            self._status(
                f"A new '{self.new_preset()}' network from random weights, at the scale of the pair's pixel sizes.", ""
            )
            return
        if is_file and not self.path.text().strip():
            hint = NO_DEFAULT_MODEL if not self.shipped else "Choose a model file with Browse..."
            self._status(hint, "")
            return
        try:
            model = self.model()
        except (ModelFileError, ValueError, OSError) as exc:
            self._status(f"Cannot use this model: {exc}", ERROR_STYLE)
            return
        text, style = model_summary(model)
        choice = self.shipped_choice()
        if choice is not None and choice.zoo is not None and choice.zoo.card:
            text += f" Model card: {choice.zoo.card}."
        self._status(text, style)

    def _status(self, text: str, style: str) -> None:
        self.model_status.setText(text)
        self.model_status.setStyleSheet(style)

    def options(self, **more: Any) -> PredictOptions:
        """Return the run's options from this form (device, tile, overlap, self-ensemble), with ``more`` fields.

        ``more``: further :class:`~napari_emsr.predict.options.PredictOptions` fields the panel
        decides (pixel size, region, first slice, overwrite). A bad value is a ValueError.
        """
        from napari_emsr.predict.options import PredictOptions

        return PredictOptions(
            device=self.device.currentData(),
            tile=self.tile.value() or None,
            overlap=self.overlap.engine_value(),
            self_ensemble=self.self_ensemble.isChecked(),
            precision=self.precision.currentData(),
            **more,
        )


def model_summary(model: Any) -> tuple[str, str]:
    """(one line on what the model is, style): random weights are a visible warning."""
    meta, config = model.metadata, model.config
    preset = getattr(config, "preset_name", None) or "custom"
    what = f"EMSR {preset}, x{config.scale}"
    if meta.input_pixel_size_nm:
        size = meta.input_pixel_size_nm
        what += f", for {size:g} nm input pixels (-> {size / config.scale:g} nm)"
    valid = meta.valid_input_pixel_size_nm
    if valid:
        what += f"; measured to work for {valid[0]:g}-{valid[1]:g} nm input"
    if not meta.trained:
        return (
            f"RANDOM WEIGHTS, not a trained model ({what}): its output is noise, not a super-resolution "
            "result; use it only to test the pipeline.",
            WARNING_STYLE,
        )
    return f"Trained model: {meta.name + ', ' if meta.name else ''}{what}.", ""


def engine_pixel_size(sizes: tuple[float | None, ...] | None) -> Any:
    """Return a layer's pixel size as the engine takes it: one per axis, one for y and x, or None."""
    if sizes is None or None in sizes[-2:]:
        return None
    if None not in sizes:
        return tuple(sizes)
    return sizes[-1] if sizes[-1] == sizes[-2] else None
