"""Training checkpoints without pickle: model, Adam moments, RNG states and progress in one file.

A checkpoint is a normal model file (``load_model`` reads it) with extra tensors under
``train_state.`` (optimizer moments, random generator states) and a ``train_state`` JSON entry in
its header (step, elapsed time, best validation score, history, training settings). Resuming from
it continues the run exactly where it stopped. It is written like any model file: atomically, with
the permissions the umask gives, and a full disk leaves the previous checkpoint as it was
(:class:`~napari_emsr.model_io.ModelWriteError`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from napari_emsr.model.emsr import EMSR
from napari_emsr.model.metadata import ModelMetadata
from napari_emsr.model_io import TRAIN_STATE_PREFIX, ModelFileError, load_model, write_model_file

__all__ = ["save_checkpoint", "load_checkpoint", "load_averaged_weights"]

_OPTIM = TRAIN_STATE_PREFIX + "optim."
_RNG = TRAIN_STATE_PREFIX + "rng."
_AVERAGE = TRAIN_STATE_PREFIX + "ema."


def save_checkpoint(
    path: str | os.PathLike,
    model: EMSR,
    info: ModelMetadata,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    progress: dict[str, Any],
    averaged: EMSR | None = None,
) -> Path:
    """Write (atomically, replacing any previous checkpoint) the full training state.

    ``averaged``: the run's exponential moving average of the weights, if it keeps one.
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{_OPTIM}{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    for name, gen in generators.items():
        tensors[_RNG + name] = gen.get_state()
    if averaged is not None:
        for name, value in averaged.state_dict().items():
            tensors[_AVERAGE + name] = value.detach().contiguous()
    header = {
        "param_groups": state["param_groups"],
        "optim_scalars": scalars,
        "progress": progress,
    }
    return write_model_file(
        model,
        path,
        info,
        overwrite=True,
        extra_tensors=tensors,
        extra_metadata={"train_state": json.dumps(header)},
    )


def load_checkpoint(path: str | os.PathLike) -> tuple[EMSR, dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint: ``(model, optimizer_state_dict, generator_states, progress)``."""
    from safetensors import safe_open

    model = load_model(path)
    with safe_open(str(path), "pt") as f:
        header = f.metadata().get("train_state")
        if header is None:
            raise ModelFileError(path, "a model file, but not a training checkpoint (it has no training state)")
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith(TRAIN_STATE_PREFIX)}
    try:
        meta = json.loads(header)
        optim_state: dict[int, dict[str, Any]] = {}
        for name, tensor in tensors.items():
            if name.startswith(_OPTIM):
                pid, key = name[len(_OPTIM) :].split(".", 1)
                optim_state.setdefault(int(pid), {})[key] = tensor
        for name, value in meta["optim_scalars"].items():
            pid, key = name.split(".", 1)
            optim_state.setdefault(int(pid), {})[key] = value
        generators = {k[len(_RNG) :]: v for k, v in tensors.items() if k.startswith(_RNG)}
        optimizer = {"state": optim_state, "param_groups": meta["param_groups"]}
        progress = meta["progress"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(path, f"corrupt training state in the checkpoint ({type(exc).__name__}: {exc})") from None
    return model, optimizer, generators, progress


def load_averaged_weights(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """Return the moving average of the weights a checkpoint holds (a state dict), or None if it has none."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        names = [k for k in f.keys() if k.startswith(_AVERAGE)]
        return {k[len(_AVERAGE) :]: f.get_tensor(k) for k in names} if names else None
