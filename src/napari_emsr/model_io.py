"""Model files: one safetensors file per model, never unpickled.

A model file holds the network's weights as safetensors tensors and, in the safetensors header's
string metadata, three entries:

- ``format``: ``"napari-emsr-model"`` (what makes the file ours);
- ``format_version``: ``"1"``;
- ``emsr``: JSON with ``config`` (an :class:`EMSRConfig`), ``scale`` and the
  :class:`ModelMetadata` fields (trained, input pixel size, normalisation, provenance, ...).

Loading parses that header and the raw tensor bytes only: no code from the file ever runs.
Writing goes to a temporary name first and is renamed into place, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from napari_emsr._atomic import atomic_path
from napari_emsr.config import ConfigError, EMSRConfig
from napari_emsr.model.emsr import EMSR
from napari_emsr.model.metadata import ModelMetadata

__all__ = [
    "ModelFileError",
    "save_model",
    "load_model",
    "read_model_header",
    "write_model_file",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "TRAIN_STATE_PREFIX",
    "default_model_path",
    "resolve_model_path",
    "DEFAULT_MODEL_NAME",
]

FORMAT_NAME = "napari-emsr-model"
FORMAT_VERSION = "1"
#: tensors under this prefix hold training state (optimizer, RNG); load_model skips them
TRAIN_STATE_PREFIX = "train_state."
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


#: file name of the pretrained default model shipped inside the package (src/napari_emsr/weights/)
DEFAULT_MODEL_NAME = "emsr-default-x3.safetensors"


def default_model_path(scale: int | None = None) -> Path | None:
    """The shipped model used when none is given, for ``scale`` (default 3); None if there is none."""
    from napari_emsr.zoo import default_for_scale

    entry = default_for_scale(scale)
    return entry.path if entry is not None else None


def resolve_model_path(path: str | os.PathLike | None, *, scale: int | None = None) -> Path:
    """The model file to load for ``path``.

    None: the zoo's default model for ``scale`` (default 3). A zoo name (``"default"``, ``"em-x2"``,
    see ``emsr info --zoo``) that is not also an existing file: that shipped model. Anything else is
    a path. A clear error when the zoo has no model for the request.
    """
    from napari_emsr import zoo

    if path is not None:
        if isinstance(path, str) and not Path(path).exists() and (entry := zoo.find(path)) is not None:
            return entry.path
        return Path(path)
    default = default_model_path(scale)
    if default is None:
        have = sorted({m.scale for m in zoo.zoo_models()})
        what = f"no shipped model for x{scale}" if scale is not None and have else "no shipped default model"
        raise FileNotFoundError(
            f"no model given and this napari-emsr build has {what}"
            + (f" (it has x{', x'.join(map(str, have))})" if have else "")
            + "; give a model file (CLI: --model FILE), e.g. one made with 'emsr train' or 'emsr finetune'"
        )
    return default


class ModelFileError(ValueError):
    """A model file is missing, foreign, corrupt, truncated or does not match its own config."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _sniff_foreign(path: Path, head: bytes) -> str | None:
    """A hint for well-known files that are not safetensors."""
    if head[:2] == b"PK":
        return (
            "this is a zip archive (a PyTorch .pt/.pth checkpoint or a bioimage.io package), not a "
            "napari-emsr model file; napari-emsr never unpickles model files. Save the weights as "
            "safetensors with napari_emsr.save_model"
        )
    if head[:1] == b"\x80":
        return "this is a Python pickle, not a napari-emsr model file; napari-emsr never unpickles model files"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "this is an HDF5 file (e.g. a Keras model), not a napari-emsr model file"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"\x89PNG"):
        return "this is an image, not a model file; give the image as input and the model with --model"
    return None


def read_model_header(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and check a model file's header without loading its weights.

    Returns ``(tensors, emsr)``: the tensor table (name -> dtype, shape, offsets) and the parsed
    ``emsr`` metadata. Raises :class:`ModelFileError` with the file name and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(path, "no such file")
    if path.is_dir():
        raise ModelFileError(path, "is a folder, not a model file")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelFileError(path, f"file is empty or truncated ({size} bytes); it is not a model file")
        hint = _sniff_foreign(path, head)
        if hint:
            raise ModelFileError(path, hint)
        header_len = int.from_bytes(head, "little")
        if header_len > min(_MAX_HEADER, size - 8):
            raise ModelFileError(path, "not a safetensors file (its first 8 bytes give no valid header length)")
        raw = fh.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(path, "not a safetensors file (its header is not valid JSON)") from None
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(
            path,
            "a safetensors file, but not a napari-emsr model (its metadata has no format "
            f"'{FORMAT_NAME}'); it probably comes from another tool",
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            path,
            f"model format version {meta.get('format_version')!r} is not supported by this napari-emsr "
            f"(it reads version {FORMAT_VERSION}); update napari-emsr",
        )
    _check_extent(path, header, size - 8 - header_len)
    try:
        emsr = json.loads(meta.get("emsr", ""))
        if not isinstance(emsr, dict):
            raise ValueError
    except ValueError:
        raise ModelFileError(path, "the 'emsr' metadata entry is missing or not valid JSON") from None
    return header, emsr


def _check_extent(path: Path, tensors: dict[str, Any], data_size: int) -> None:
    """The tensors must tile the data area exactly; otherwise the file is truncated or corrupt."""
    end = 0
    for name, entry in tensors.items():
        try:
            start, stop = entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ModelFileError(path, f"corrupt header: tensor {name!r} has no valid data offsets") from None
        end = max(end, int(stop))
    if end > data_size:
        raise ModelFileError(
            path, f"file is truncated: the header describes {end} bytes of weights but only {data_size} are present"
        )


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> EMSR:
    """Load an EMSR model file (safetensors) without unpickling anything.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save_model`, or a bioimage.io model package (.zip) written by
        ``emsr export-bioimageio``: its attached safetensors file is loaded (its pickle-based
        ``pytorch_state_dict`` weights are never read; see :mod:`napari_emsr.bmz.package`).
    device : str or torch.device
        Where to put the weights.

    Returns
    -------
    EMSR
        The network in eval mode, with ``model.metadata`` (a :class:`ModelMetadata`) filled in.

    Raises
    ------
    ModelFileError
        If the file is missing, not a safetensors file, not a napari-emsr model, truncated,
        corrupt, or its weights do not match its config; for a .zip: not a bioimage.io package, not
        one of napari-emsr (e.g. only pickled weights), or a corrupt one.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file():
        from napari_emsr.bmz.package import is_zip, load_package

        with path.open("rb") as fh:
            if is_zip(fh.read(4)):
                return load_package(path, device=device)
    _, emsr = read_model_header(path)
    try:
        config = EMSRConfig.from_dict(emsr.get("config", {}))
    except (ConfigError, TypeError) as exc:
        raise ModelFileError(path, f"invalid network config: {exc}") from None
    if emsr.get("scale", config.scale) != config.scale:
        raise ModelFileError(path, f"scale {emsr.get('scale')} disagrees with the config's scale {config.scale}")
    fields = {k: v for k, v in emsr.items() if k not in ("config", "scale")}
    try:
        metadata = ModelMetadata.from_dict(fields)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(path, f"invalid metadata: {exc}") from None
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ModelFileError(path, f"corrupt weights ({exc})") from None
    state = {k: v for k, v in state.items() if not k.startswith(TRAIN_STATE_PREFIX)}
    model = EMSR(config)
    _check_state(path, model, state)
    model.load_state_dict(state, strict=True)
    model.metadata = metadata
    return model.to(device).eval()


def _check_state(path: Path, model: EMSR, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ModelFileError(path, f"weights do not match the network config: {', '.join(parts)} tensors")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ModelFileError(
                path,
                f"weights do not match the network config: {name} has shape {tuple(tensor.shape)}, "
                f"the config needs {tuple(expected[name].shape)}",
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFileError(path, f"corrupt weights: {name} contains NaN or infinite values")


def save_model(model: EMSR, path: str | os.PathLike, *, overwrite: bool = False, **metadata: Any) -> Path:
    """Write ``model`` to one safetensors file with its config and metadata.

    Parameters
    ----------
    model : EMSR
        The network; its ``metadata`` is stored, updated by ``**metadata``.
    path : path-like
        Destination, conventionally ``*.safetensors``. Written atomically (temporary file, rename).
    overwrite : bool
        Replace an existing file. Off by default, so that no model is lost by accident.
    **metadata
        :class:`ModelMetadata` fields to set, e.g. ``trained=True``, ``input_pixel_size_nm=30``,
        ``normalization={"mode": "range", "low": 0, "high": 255}``, ``provenance={...}``.

    Returns
    -------
    Path
        The path written.
    """
    if not isinstance(model, EMSR):
        raise TypeError(f"save_model expects an EMSR network, got {type(model).__name__}")
    path = Path(path)
    info = model.metadata.updated(**metadata) if metadata else model.metadata
    write_model_file(model, path, info, overwrite=overwrite)
    model.metadata = info
    return path


def write_model_file(
    model: EMSR,
    path: str | os.PathLike,
    info: ModelMetadata,
    *,
    overwrite: bool = False,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write a model file; training checkpoints add tensors under :data:`TRAIN_STATE_PREFIX`.

    Extra tensors (optimizer moments, RNG states) are ignored by :func:`load_model`, so a training
    checkpoint is also a usable model file.
    """
    from safetensors.torch import save_file

    payload = {"config": model.config.to_dict(), "scale": model.config.scale, **info.to_dict()}
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "emsr": json.dumps(payload, sort_keys=True)}
    header.update(extra_metadata or {})
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    for name, tensor in (extra_tensors or {}).items():
        if not name.startswith(TRAIN_STATE_PREFIX):
            raise ValueError(f"extra tensor names must start with {TRAIN_STATE_PREFIX!r}, got {name!r}")
        state[name] = tensor.detach().to("cpu").contiguous()
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp), metadata=header)
    return Path(path)
