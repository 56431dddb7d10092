"""The shipped models (the zoo) as the panels offer them: one choice per model, by name.

Shared by the model choice of Super-resolve / Export / Fine-tune (``_engine_options``) and by the
Model info panel. The list is read from :mod:`napari_emsr.zoo` each time a panel is made, so a
model added to ``weights/zoo.json`` shows up without any change here. The model used when none is
given (``napari_emsr.model_io.default_model_path()``, the default of scale 3) is the one chosen
first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ShippedChoice", "shipped_choices", "zoo_label", "zoo_tooltip", "first_choice"]


@dataclass(frozen=True)
class ShippedChoice:
    """A shipped model as a panel offers it: the label, the file, and its zoo entry (if any)."""

    label: str
    path: Path
    zoo: Any = None  # napari_emsr.zoo.ZooModel, or None for a default model outside the zoo index
    first: bool = False  # the model used when none is given (scale 3): chosen first

    @property
    def name(self) -> str | None:
        return None if self.zoo is None else self.zoo.name

    @property
    def tooltip(self) -> str:
        return zoo_tooltip(self.zoo) if self.zoo is not None else str(self.path)


def zoo_label(model: Any) -> str:
    """``"em-x3 (x3, 30 nm, default)"``: name, scale, input pixel size, whether it is its scale's default."""
    parts = [f"x{model.scale}"]
    if model.input_pixel_size_nm:
        parts.append(f"{model.input_pixel_size_nm:g} nm")
    if model.is_default:
        parts.append("default")
    return f"{model.name} ({', '.join(parts)})"


def zoo_tooltip(model: Any) -> str:
    """Say what a zoo model is for: its description, the measured pixel-size range and its card."""
    valid = model.valid_input_pixel_size_nm
    lines = [model.description or model.name]
    lines.append(
        f"Measured to work for {valid[0]:g}-{valid[1]:g} nm input pixels." if valid
        else "Valid input pixel-size range: not measured."
    )  # fmt: skip
    if model.card:
        lines.append(f"Model card: {model.card}")
    lines.append(f"File: {model.path.name}")
    return "\n".join(lines)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def shipped_choices() -> list[ShippedChoice]:
    """Every zoo model (in the index's order), the default model marked; [] when none ships.

    A default model that is not in the zoo index (a build, or a test, that points
    ``default_model_path`` elsewhere) is offered first as "Default model (<file>)".
    """
    from napari_emsr import model_io, zoo

    default = model_io.default_model_path()
    choices = [
        ShippedChoice(zoo_label(m), m.path, m, default is not None and _same(m.path, default))
        for m in zoo.zoo_models()
    ]
    if default is not None and not any(c.first for c in choices):
        choices.insert(0, ShippedChoice(f"Default model ({Path(default).stem})", Path(default), None, True))
    return choices


def first_choice(choices: list[ShippedChoice]) -> int | None:
    """Return the index of the choice a panel starts on: the default model, else the first; None if empty."""
    if not choices:
        return None
    return next((i for i, c in enumerate(choices) if c.first), 0)
