"""The engine's options as a form: model (a shipped zoo model or a file), device, tile, overlap, self-ensemble.

Shared by the "Super-resolve" and "Export" dock widgets; :meth:`EngineOptions.options` builds the
:class:`napari_emsr.PredictOptions` that goes straight to :func:`napari_emsr.iter_super_resolve`.
The model choice lists every model of the zoo by name
(``em-x3 (x3, 30 nm, default)``, see ``_zoo_choices``), the default model chosen first, then a model
file. The "Fine-tune" widget uses its model and device rows only (``inference=False``) and adds new
networks of named presets as starting points (``presets=``).
The fields are magicgui widgets, with Qt (``.native``) where magicgui has no word: per-item tooltips,
greyed-out devices, special texts, word-wrapped status lines, the overlap's words (:class:`OverlapBox`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.backends._qtpy.widgets import QBaseRangedWidget
from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, Widget
from magicgui.widgets.bases import RangedWidget
from qtpy.QtCore import Qt
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import QAbstractSpinBox, QSizePolicy, QSpinBox, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from napari_emsr.predict.options import PredictOptions

__all__ = [
    "EngineOptions",
    "OverlapBox",
    "spin_widget",
    "row",
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


def spin_widget(qt_class: type[QAbstractSpinBox], **options: Any) -> RangedWidget:
    """Return a magicgui spin box (``value``, ``min``, ``max``, ``step``, ``label``, ...) on ``qt_class``.

    For a QSpinBox / QDoubleSpinBox subclass whose text or arrows magicgui cannot express (words
    for values, halving / doubling), or a plain QSpinBox where a special text is needed (magicgui's
    own SpinBox, a superqt QLargeIntSpinBox, does not show one).
    """

    class Backend(QBaseRangedWidget):  # magicgui's Qt backend of a spin box, on qt_class
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(qt_class, **kwargs)

    return RangedWidget(widget_type=Backend, **options)


def row(label: str, *widgets: Widget) -> Container:
    """Return a magicgui Container of ``widgets`` side by side: one row of a form, labelled ``label``."""
    box = Container(widgets=widgets, layout="horizontal", labels=False, label=label)
    box.margins = (0, 0, 0, 0)
    for index in range(len(widgets)):
        box.native.layout().setStretch(index, 1)  # an equal share each
    return box


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
    """Tile overlap: "auto" (the engine's measured halo, the default), "exact", or pixels.

    Custom Qt: magicgui's spin boxes show numbers only (one special text at most), not two words.
    """

    AUTO, EXACT = -2, -1
    _TEXT = {AUTO: "auto (measured effective radius)", EXACT: "exact (receptive radius)"}

    def textFromValue(self, value: int) -> str:  # noqa: N802 (Qt's name)
        return self._TEXT.get(value, str(value))

    def valueFromText(self, text: str | None) -> int:  # noqa: N802 (Qt's name)
        text = text or ""
        for value, label in self._TEXT.items():
            if text.strip() and label.startswith(text.strip().split()[0]):
                return value
        return int(text) if text.strip().lstrip("-").isdigit() else self.AUTO

    def validate(self, text: str | None, pos: int):
        text = text or ""
        ok = text.strip().isdigit() or any(label.startswith(text.strip()) for label in self._TEXT.values())
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate, text, pos)

    @classmethod
    def engine_value(cls, value: int) -> int | str:
        """Return ``value`` as PredictOptions.overlap takes it ("auto", "exact" or pixels)."""
        return {cls.AUTO: "auto", cls.EXACT: "exact"}.get(value, value)


#: the Precision choices (label -> PredictOptions.precision)
PRECISION_ITEMS = {"auto": "auto", "fp32": "fp32", "bf16": "bf16", "fp16 (CUDA)": "fp16"}
#: the fields' tooltips
_TIPS = {
    "source": "a shipped model (see Model info, or `emsr info --zoo`), a model file, or a new network",
    "tile": "Core of a tile in input pixels; larger tiles waste less on halos but need more memory.",
    "overlap": "Context around each tile in input pixels. 'auto': the network's measured effective radius (within "
    "about a quarter grey level of a whole-slice prediction); 'exact' equals a whole-slice prediction at 1.5-2x the "
    "cost; a number of pixels: smaller is faster and approximate (the cross-fade hides the seams).",
    "precision": "arithmetic of the network: auto takes bf16 on GPUs that have it and on CPUs with AMX-BF16 (about "
    "2x faster, output within 0.001 dB of fp32), fp32 elsewhere",
}

#: the Precision tooltip of a training panel
_TRAINING_PRECISION_TIP = (
    "arithmetic of training (default auto, as emsr finetune): auto takes bf16 on GPUs that have it and on CPUs with "
    "AMX-BF16 (about 1.6x the steps per second of fp32 there, same held-out quality at equal steps; weights and "
    "loss stay fp32), fp32 elsewhere, where bf16 is emulated and slower"
)


class EngineOptions(QWidget):
    """Model source, device, tile size, overlap and self-ensemble, with what each resolves to.

    A QWidget holding a magicgui Container rather than a Container: its :meth:`options`, which the
    panels call, would shadow magicgui's ``Widget.options``.
    """

    def __init__(self, parent: QWidget | None = None, *, presets: tuple[str, ...] = (), inference: bool = True) -> None:
        super().__init__(parent)
        from napari_emsr._napari.common.zoo_choices import first_choice, shipped_choices

        self.shipped = shipped_choices()
        first = first_choice(self.shipped)
        #: the model used when none is chosen (the zoo's default), or None when none ships
        self.default_path = self.shipped[first].path if first is not None else None
        self.inference = inference
        sources = [(choice.label, f"{_ZOO_KEY}{index}") for index, choice in enumerate(self.shipped)]
        sources += [(FILE_ITEM, _FILE_KEY)] + [(_PRESET_ITEM.format(n), f"{_PRESET_KEY}{n}") for n in presets]
        self.source = ComboBox(label="Model", choices=sources, value=sources[first or 0][1])
        for index, choice in enumerate(self.shipped):
            self.source.native.setItemData(index, choice.tooltip, Qt.ItemDataRole.ToolTipRole)
        self.path = FileEdit(mode=FileDialogMode.EXISTING_FILE, filter="EMSR models (*.safetensors)", nullable=True)
        self.path.line_edit.native.setPlaceholderText("a .safetensors model file")
        self.path.choose_btn.text = "Browse..."
        devices = self._devices = _available_devices()
        self.device = ComboBox(label="Device", choices=[(f"{n} (not available)" if p else n, n) for n, p in devices])
        for index, (_, problem) in enumerate(devices):
            if problem is not None:  # listed, greyed out, with the reason as its tooltip
                item = self.device.native.model().item(index)  # the QComboBox's QStandardItemModel
                item.setEnabled(False)
                item.setToolTip(problem)
        self.model_status, self.device_status = Label(), Label()
        for status in (self.model_status, self.device_status):  # magicgui's Label is one fixed-size line
            status.native.setWordWrap(True)
            status.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.tile = spin_widget(QSpinBox, label="Tile", value=0, min=0, max=8192, step=64)
        self.tile.native.setSpecialValueText("auto (CPU 256, 512 in bf16; GPU 1024)")
        self.overlap = spin_widget(
            OverlapBox, label="Overlap", value=OverlapBox.AUTO, min=OverlapBox.AUTO, max=1024, step=8
        )
        # training has no fp16 (it would need loss scaling)
        precisions = [(label, value) for label, value in PRECISION_ITEMS.items() if inference or value != "fp16"]
        self.precision = ComboBox(label="Precision", choices=precisions)
        self.self_ensemble = CheckBox(text="Self-ensemble (8 flips / rotations, 8x slower)")
        self._chosen_ensemble = False  # the user's Self-ensemble choice while another choice implies it
        for name, tip in _TIPS.items():
            getattr(self, name).tooltip = tip
        fields: list[Widget] = [self.source, self.path, self.model_status, self.device, self.device_status]
        if inference:  # else made but not shown: options() still reads them
            fields += [self.tile, self.overlap, self.precision, row("", self.self_ensemble)]
        else:  # the arithmetic of training (and of the panel's previews); auto as emsr finetune
            self.precision.value, self.precision.tooltip = "auto", _TRAINING_PRECISION_TIP
            fields += [self.precision]
        form: Container = Container()
        form.extend(fields)  # added once made, so that the labels get one width
        form.margins = (0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(form.native)
        layout.addStretch()  # rows at their heights, as in a form layout
        self._loaded: tuple[tuple, Any] | None = None
        self.source.changed.connect(self.refresh)
        self.path.line_edit.native.editingFinished.connect(self.refresh)
        self.path.choose_btn.changed.connect(self.refresh)  # after FileEdit's own dialog
        self.device.changed.connect(self._show_device)
        self.precision.changed.connect(self._show_device)
        self._show_device()
        self.refresh()

    def imply_self_ensemble(self, why: str | None) -> None:
        """Tick and lock Self-ensemble while another choice needs it (``why``, its tooltip); None: back as it was."""
        box = self.self_ensemble
        if why is not None:
            if box.enabled:
                self._chosen_ensemble = box.value
            box.value, box.enabled, box.tooltip = True, False, why
        elif not box.enabled:
            box.value, box.enabled, box.tooltip = self._chosen_ensemble, True, None

    def _show_device(self, *_: Any) -> None:
        from napari_emsr.device import resolve_precision, select_device

        choice = self.device.value
        found = ", ".join(name for name, problem in self._devices if problem is None and name != "auto")
        try:
            device = select_device(choice)
        except ValueError as exc:  # a device that went away since the list was made
            self.device_status.value = str(exc)
            self.device_status.native.setStyleSheet(ERROR_STYLE)
            return
        try:
            precision, why = resolve_precision(self.precision.value or "auto", device, training=not self.inference)
            arithmetic = f", {precision} ({why})"
        except ValueError as exc:  # e.g. fp16 on the CPU: said here, refused when run
            arithmetic = f"; {exc}"
        self.device_status.native.setStyleSheet("")
        self.device_status.value = f"Uses {device}{arithmetic}. Available here: {found}."

    def set_model_file(self, path: str | Path) -> None:
        """Use the model file at ``path`` (its description or problem is shown, not raised)."""
        self.path.value = Path(path)
        if not self._file_chosen():
            self.source.value = _FILE_KEY  # triggers refresh
        else:
            self.refresh()

    def zoo_names(self) -> list[str]:
        """Return the zoo names offered, in order (a default model outside the zoo is not among them)."""
        return [c.name for c in self.shipped if c.name is not None]

    def set_zoo_model(self, name: str) -> None:
        """Choose the shipped model called ``name`` (``"default"``: the default model); KeyError if none."""
        for index, choice in enumerate(self.shipped):
            if choice.name == name or (name == "default" and choice.first):
                self.source.value = f"{_ZOO_KEY}{index}"  # triggers refresh
                return
        raise KeyError(f"no shipped model called {name!r}; the zoo has: {', '.join(self.zoo_names()) or 'none'}")

    def shipped_choice(self) -> Any:
        """Return the chosen shipped model (a ``_zoo_choices.ShippedChoice``), or None for a file or a new network."""
        key = self.source.value or ""
        return self.shipped[int(key[len(_ZOO_KEY):])] if key.startswith(_ZOO_KEY) else None

    def zoo_model(self) -> Any:
        """Return the chosen zoo model (``napari_emsr.zoo.ZooModel``), or None."""
        choice = self.shipped_choice()
        return None if choice is None else choice.zoo

    def _file_chosen(self) -> bool:
        return self.source.value == _FILE_KEY

    def new_preset(self) -> str | None:
        """Return the preset of a new (random-weight) network when one is chosen, else None."""
        key = self.source.value or ""
        return key[len(_PRESET_KEY):] if key.startswith(_PRESET_KEY) else None

    def model_path(self) -> Path | None:
        """Return the chosen model file (a shipped model's own file when one is chosen; None for a new network)."""
        choice = self.shipped_choice()
        if choice is not None:
            return choice.path
        if not self._file_chosen():
            return None
        text = self.path.line_edit.value.strip()
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
        self.path.visible = is_file
        if self.new_preset() is not None:
            self._status(
                f"A new '{self.new_preset()}' network from random weights, at the scale of the pair's pixel sizes.", ""
            )
            return
        if is_file and not self.path.line_edit.value.strip():
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
        self.model_status.value = text
        self.model_status.native.setStyleSheet(style)

    def options(self, **more: Any) -> PredictOptions:
        """Return the run's options from this form (device, tile, overlap, self-ensemble), with ``more`` fields.

        ``more``: further :class:`~napari_emsr.predict.options.PredictOptions` fields the panel
        decides (pixel size, region, first slice, overwrite). A bad value is a ValueError.
        """
        from napari_emsr.predict.options import PredictOptions

        return PredictOptions(
            device=self.device.value,
            tile=self.tile.value or None,
            overlap=OverlapBox.engine_value(self.overlap.value),
            self_ensemble=self.self_ensemble.value,
            precision=self.precision.value,
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
