"""napari-emsr: no-clean-reference super-resolution of electron-microscopy volumes (EMSR).

The public API is importable from the package root; its modules are loaded on first use, so that
``import napari_emsr`` (as napari does when it discovers plugins) stays light and imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_API = {
    "EMSRConfig": "napari_emsr.config",
    "ConfigError": "napari_emsr.config",
    "PRESETS": "napari_emsr.config",
    "EMSR": "napari_emsr.model.emsr",
    "build_emsr": "napari_emsr.model.emsr",
    "ModelMetadata": "napari_emsr.model.metadata",
    "Normalization": "napari_emsr.model.metadata",
    "save_model": "napari_emsr.model_io",
    "load_model": "napari_emsr.model_io",
    "ModelFileError": "napari_emsr.model_io",
    "describe_model": "napari_emsr.describe",
    "PredictOptions": "napari_emsr.predict",
    "PlanSummary": "napari_emsr.predict",
    "iter_super_resolve": "napari_emsr.predict",
    "super_resolve": "napari_emsr.predict",
    "iter_super_resolve_distributed": "napari_emsr.predict",
    "super_resolve_distributed": "napari_emsr.predict",
    "open_volume": "napari_emsr.io",
    "iter_write": "napari_emsr.io",
    "Event": "napari_emsr.events",
    "export_bioimageio": "napari_emsr.bmz",
    "iter_finetune": "napari_emsr.training",
    "finetune": "napari_emsr.training",
    "TrainingConfig": "napari_emsr.config",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_emsr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from napari_emsr.bmz import export_bioimageio
    from napari_emsr.config import PRESETS, ConfigError, EMSRConfig, TrainingConfig
    from napari_emsr.describe import describe_model
    from napari_emsr.events import Event
    from napari_emsr.io import iter_write, open_volume
    from napari_emsr.model.emsr import EMSR, build_emsr
    from napari_emsr.model.metadata import ModelMetadata, Normalization
    from napari_emsr.model_io import ModelFileError, load_model, save_model
    from napari_emsr.predict import (
        PlanSummary,
        PredictOptions,
        iter_super_resolve,
        iter_super_resolve_distributed,
        super_resolve,
        super_resolve_distributed,
    )
    from napari_emsr.training import finetune, iter_finetune
