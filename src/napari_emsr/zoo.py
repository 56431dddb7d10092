"""The pretrained models shipped inside the package (``src/napari_emsr/weights/``): the model zoo.

``weights/zoo.json`` names each file and, per scale, the model used when none is given. Everything
else (scale, preset, input pixel size, the measured range of valid input pixel sizes, provenance)
is read from the model files themselves, so the index cannot disagree with the weights. Nothing is
ever downloaded.

A zoo name can stand wherever a model file is accepted (``--model em-x2``, ``super_resolve(v,
"em-x2")``, the panels' model choice); ``"default"`` is the default model of scale 3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from napari_emsr.model_file import read_model_header

__all__ = ["ZooModel", "WEIGHTS_DIR", "DEFAULT_SCALE", "zoo_models", "find", "default_for_scale", "zoo_names"]

#: where the shipped model files and their index live
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: the scale used when neither a model nor a scale is given
DEFAULT_SCALE = 3


@dataclass(frozen=True)
class ZooModel:
    """One shipped model, as its file describes it."""

    name: str
    path: Path
    scale: int
    preset: str | None
    input_pixel_size_nm: float | None
    valid_input_pixel_size_nm: tuple[float, float] | None
    description: str
    is_default: bool
    card: str | None

    def summary(self) -> dict:
        """Return a JSON-ready description (``emsr info --zoo --json``)."""
        return {
            "name": self.name, "file": self.path.name, "scale": self.scale, "preset": self.preset,
            "input_pixel_size_nm": self.input_pixel_size_nm,
            "valid_input_pixel_size_nm": list(valid) if (valid := self.valid_input_pixel_size_nm) else None,
            "default_for_scale": self.is_default, "description": self.description, "card": self.card,
        }  # fmt: skip


def _index(weights_dir: Path) -> dict:
    path = weights_dir / "zoo.json"
    if not path.is_file():
        return {"models": [], "defaults": {}}
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=4)
def _zoo(weights_dir: Path) -> tuple[ZooModel, ...]:
    index = _index(weights_dir)
    defaults = {str(name) for name in index.get("defaults", {}).values()}
    models = []
    for entry in index.get("models", []):
        path = weights_dir / entry["file"]
        if not path.is_file():  # a build that leaves a model out
            continue
        _, emsr = read_model_header(path)
        config = emsr.get("config", {})
        valid = emsr.get("valid_input_pixel_size_nm")
        from napari_emsr.config import EMSRConfig

        models.append(ZooModel(
            name=entry["name"], path=path, scale=int(emsr.get("scale", config.get("scale", 3))),
            preset=EMSRConfig.from_dict(config).preset_name, input_pixel_size_nm=emsr.get("input_pixel_size_nm"),
            valid_input_pixel_size_nm=tuple(valid) if valid else None, description=emsr.get("description", ""),
            is_default=entry["name"] in defaults, card=entry.get("card"),
        ))  # fmt: skip
    return tuple(models)


def zoo_models(weights_dir: Path | None = None) -> list[ZooModel]:
    """Return the shipped models, in the index's order."""
    return list(_zoo(weights_dir or WEIGHTS_DIR))


def zoo_names(weights_dir: Path | None = None) -> list[str]:
    """Return the names a model can be given by (``"default"`` included when a default exists)."""
    names = [m.name for m in zoo_models(weights_dir)]
    return (["default"] if default_for_scale(DEFAULT_SCALE, weights_dir) else []) + names


def find(name: str, weights_dir: Path | None = None) -> ZooModel | None:
    """Return the zoo model called ``name`` (``"default"``: the default of scale 3), or None."""
    if name == "default":
        return default_for_scale(DEFAULT_SCALE, weights_dir)
    return next((m for m in zoo_models(weights_dir) if m.name == name), None)


def default_for_scale(scale: int | None = None, weights_dir: Path | None = None) -> ZooModel | None:
    """Return the model used when none is given, for ``scale`` (default 3); None if the zoo has none."""
    scale = DEFAULT_SCALE if scale is None else int(scale)
    name = _index(weights_dir or WEIGHTS_DIR).get("defaults", {}).get(str(scale))
    return next((m for m in zoo_models(weights_dir) if m.name == name), None) if name else None
