"""Model files: one safetensors file per model, never unpickled.

A model file holds the network's weights as safetensors tensors and, in the safetensors header's
string metadata, three entries:

- ``format``: ``"napari-emsr-model"`` (what makes the file ours);
- ``format_version``: ``"1"``;
- ``emsr``: JSON with ``config`` (an :class:`EMSRConfig`), ``scale`` and the
  :class:`ModelMetadata` fields (trained, input pixel size, normalisation, provenance, ...).

Two tensors under ``self_check.`` hold a fixed input and the network's output on it, computed when
the file was written. Loading rebuilds the network from the config, loads the weights and checks
that it reproduces that output: this catches config values that no tensor shape fixes (the
attention window size and the number of heads) when they were changed after writing. Files
without these tensors (written by earlier versions) load without that check.

Loading parses that header and the raw tensor bytes only: no code from the file ever runs.
Writing goes to a temporary name first and is renamed into place, so a crash never leaves a
half-written file under the final name; the file's permissions follow the umask, as for any
file the user creates.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from napari_emsr._atomic import atomic_path
from napari_emsr.config import ConfigError, EMSRConfig
from napari_emsr.errors import EMSRError, Hint
from napari_emsr.model.emsr import EMSR
from napari_emsr.model.metadata import ModelMetadata
from napari_emsr.model_file import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SELF_CHECK_PREFIX,
    TRAIN_STATE_PREFIX,
    ModelFileError,
    read_model_header,
)

__all__ = [
    "ModelFileError",
    "ModelWriteError",
    "save_model",
    "load_model",
    "load_package",
    "read_model_header",
    "write_model_file",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "TRAIN_STATE_PREFIX",
    "SELF_CHECK_PREFIX",
    "default_model_path",
    "resolve_model_path",
    "DEFAULT_MODEL_NAME",
]

_CHECK_SIDE = 20  # LR pixels of the self-check input: several windows for every window size <= 10
#: errors that mean "no room to write": a full disk, a full quota, a file-size limit (ulimit -f)
_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


#: file name of the pretrained default model shipped inside the package (src/napari_emsr/weights/)
DEFAULT_MODEL_NAME = "emsr-default-x3.safetensors"


def default_model_path(scale: int | None = None) -> Path | None:
    """Return the shipped model used when none is given, for ``scale`` (default 3); None if there is none."""
    from napari_emsr.zoo import default_for_scale

    entry = default_for_scale(scale)
    return entry.path if entry is not None else None


def resolve_model_path(path: str | os.PathLike | None, *, scale: int | None = None) -> Path:
    """Return the model file to load for ``path``.

    None: the zoo's default model for ``scale`` (default 3). A zoo name (``"default"``, ``"em-x2"``,
    see :func:`napari_emsr.zoo.zoo_models`) that is not also an existing file: that shipped model. Anything else is
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
        raise NoModelError(
            f"no model given and this napari-emsr build has {what}"
            + (f" (it has x{', x'.join(map(str, have))})" if have else ""),
            Hint("model", "FILE", "(a model file, e.g. one made by training or fine-tuning)"),
        )
    return default


class NoModelError(EMSRError, FileNotFoundError):
    """No model was given and none ships for the request."""


class ModelWriteError(OSError):
    """A model file could not be written (e.g. the disk is full); nothing under its name changed.

    ``path`` is the file that was being written and ``problem`` says why; ``errno`` is the
    operating system's error number. No temporary file is left behind.
    """

    def __init__(self, path: str | os.PathLike, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.path = self.filename = str(path)
        if cause.errno == errno.ENOSPC:
            what = "the disk is full (no space left on the device)"
        elif cause.errno == getattr(errno, "EDQUOT", None):
            what = "the disk quota is used up"
        elif cause.errno == errno.EFBIG:
            what = "the file would be larger than the file system or the file-size limit (ulimit -f) allows"
        else:
            what = f"it could not be written ({cause.strerror or cause})"
        self.problem = (
            f"{what} while writing it; nothing was replaced (a previous file of that name is unchanged) and no "
            "partial file was left"
        )

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


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
        from napari_emsr.bmz.package import is_zip

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
    check = {k[len(SELF_CHECK_PREFIX) :]: v for k, v in state.items() if k.startswith(SELF_CHECK_PREFIX)}
    state = {k: v for k, v in state.items() if not k.startswith((TRAIN_STATE_PREFIX, SELF_CHECK_PREFIX))}
    model = EMSR(config)
    _check_state(path, model, state)
    model.load_state_dict(state, strict=True)
    model.eval()
    if check:
        _verify_self_check(path, model, check)
    model.metadata = metadata
    return model.to(device)


def load_package(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> EMSR:
    """Load the EMSR network of a napari-emsr bioimage.io package (.zip); no pickle involved.

    The package's attached model file (checked against its recorded sha256, see
    :func:`napari_emsr.bmz.package.read_packaged_model`) is loaded like any model file, and the
    package's declared architecture must be that file's config. Raises :class:`ModelFileError`.
    """
    from napari_emsr.bmz.package import check_architecture, read_packaged_model

    member, data, rdf = read_packaged_model(path)
    with tempfile.TemporaryDirectory(prefix="emsr-package-") as folder:
        inner = Path(folder) / "model.safetensors"
        inner.write_bytes(data)
        try:
            model = load_model(inner, device=device)
        except ModelFileError as exc:
            raise ModelFileError(path, f"{member} inside the package: {exc.problem}") from None
    check_architecture(rdf, model, path)
    return model


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
        if not tensor.is_floating_point():
            raise ModelFileError(
                path,
                f"corrupt weights: {name} holds {str(tensor.dtype).removeprefix('torch.')} values, not floating "
                "point numbers (a network's weights are floats; this file was not written by napari-emsr, or was "
                "altered)",
            )
        if tensor.shape != expected[name].shape:
            raise ModelFileError(
                path,
                f"weights do not match the network config: {name} has shape {tuple(tensor.shape)}, "
                f"the config needs {tuple(expected[name].shape)}",
            )
        if not torch.isfinite(tensor).all():
            raise ModelFileError(path, f"corrupt weights: {name} contains NaN or infinite values")


def _check_input(config: EMSRConfig) -> torch.Tensor:
    """Return the self-check input: a fixed, smooth-plus-fine pattern in 0..1 (no random generator involved)."""
    n = _CHECK_SIDE
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    channels = []
    for c in range(config.in_channels):
        wave = torch.sin(0.7 * y + 0.4 * x + c) * torch.cos(0.45 * x - 0.3 * y)
        image = 0.5 + 0.3 * wave + 0.15 * torch.cos(2.3 * x * y / n)
        channels.append(image)
    return torch.stack(channels)[None].float()


def _self_check(config: EMSRConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the self-check tensors for weights ``state``.

    They are computed on the CPU in float32, from a network rebuilt from ``config`` exactly as
    :func:`load_model` rebuilds it (the random generator untouched).
    """
    with torch.random.fork_rng(devices=[]):
        net = EMSR(config)
    net.load_state_dict(state, strict=True)
    x = _check_input(config)
    with torch.inference_mode():
        y = net.eval()(x)
    return {SELF_CHECK_PREFIX + "input": x, SELF_CHECK_PREFIX + "output": y.contiguous()}


def _verify_self_check(path: Path, model: EMSR, check: dict[str, torch.Tensor]) -> None:
    """Return the rebuilt network must reproduce the output recorded when the file was written."""
    c = model.config
    x, recorded = check.get("input"), check.get("output")
    shapes_fit = (
        x is not None and recorded is not None and x.is_floating_point() and recorded.is_floating_point()
        and x.ndim == 4 and x.shape[:2] == (1, c.in_channels) and min(x.shape[2:]) >= 1
        and tuple(recorded.shape) == (1, c.out_channels, x.shape[2] * c.scale, x.shape[3] * c.scale)
    )  # fmt: skip
    if not shapes_fit or set(check) != {"input", "output"}:
        raise ModelFileError(path, "corrupt file: its self-check tensors do not fit the network config")
    assert x is not None and recorded is not None  # shapes_fit checked both
    if not (torch.isfinite(x).all() and torch.isfinite(recorded).all()):
        raise ModelFileError(path, "corrupt file: its self-check tensors contain NaN or infinite values")
    with torch.inference_mode():
        out = model(x.float())
    recorded = recorded.float()
    difference = float((out - recorded).abs().max())
    # float32 with other threads, CPUs or library versions differs by ~1e-7..1e-6; another window size by
    # ~1e-2 and another head count by ~1e-3, even with random weights
    if not difference <= 2e-5 * (1.0 + float(recorded.abs().max())):
        raise ModelFileError(
            path,
            "the network config does not fit the weights: rebuilt from the config in the file (window_size "
            f"{c.window_size}, num_heads {c.num_heads}), the network does not reproduce the output recorded when "
            f"the file was written (largest difference {difference:.3g}). A config value that no weight shape "
            "fixes, such as window_size or num_heads, was changed after the file was written",
        )


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
    from safetensors.torch import save

    payload = {"config": model.config.to_dict(), "scale": model.config.scale, **info.to_dict()}
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "emsr": json.dumps(payload, sort_keys=True)}
    header.update(extra_metadata or {})
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    state.update(_self_check(model.config, state))
    for name, tensor in (extra_tensors or {}).items():
        if not name.startswith(TRAIN_STATE_PREFIX):
            raise ValueError(f"extra tensor names must start with {TRAIN_STATE_PREFIX!r}, got {name!r}")
        state[name] = tensor.detach().to("cpu").contiguous()
    data = save(state, metadata=header)
    path = Path(path)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            # created like any file of the user's (mode 0666 less the umask), unlike safetensors' own
            # save_file, which creates 0600 files
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())  # a full disk may only show here (delayed allocation, NFS)
    except OSError as exc:
        if exc.errno in _SPACE_ERRNOS and not isinstance(exc, ModelWriteError):
            raise ModelWriteError(path, exc) from None
        raise
    return path
