"""The options of a prediction run, typed and validated once.

:class:`PredictOptions` holds everything :func:`napari_emsr.iter_super_resolve` takes besides the
volume, the model and the output. It is built in one place by each front end (the CLI from its
arguments, the napari panels from their widgets, a script from keywords) and checked once, when it
is made: a bad value is a :class:`ValueError` (or a :class:`TypeError` for a value of the wrong
kind) that says what is expected, before any file is read. What can only be checked against the
input or the model (a tile on the model's attention window, a region inside the image, a device
that exists here) is checked when the run is planned (:func:`napari_emsr.predict.plan.make_plan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["PredictOptions", "build_options", "device_spec"]

_OVERLAP_WORDS = ("auto", "exact")


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _switch(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _precision(value: Any) -> str:
    from napari_emsr.device import PRECISIONS

    text = "auto" if value is None else str(value).strip().lower()
    if text not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return text


def device_spec(device: Any) -> str:
    """Return ``device`` as a canonical device name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Only the name is checked here (whether the device exists is a question for the machine that
    runs the work: :func:`napari_emsr.device.select_device`).

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or a kind of device PyTorch has that napari-emsr does not use.
    """
    import torch

    text = "auto" if device is None else str(device).strip().lower()
    if text == "auto":
        return text
    try:
        resolved = torch.device(text)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device type {resolved.type!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return str(resolved)


def _pixel_size(value: Any) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, (int, float, np.integer, np.floating)) else value
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"pixel_size must be a number of nanometres or a sequence of them, got {value!r}") from None
    if not 1 <= len(values) <= 3:
        raise ValueError(f"pixel_size needs one number (y and x) or one per axis (2 or 3), got {len(values)}")
    sizes = []
    for v in values:
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        if not ok or not math.isfinite(float(v)) or float(v) <= 0:
            raise ValueError(f"pixel size must be a positive number of nanometres, got {v!r}")
        sizes.append(float(v))
    return sizes[0] if isinstance(value, (int, float, np.integer, np.floating)) else tuple(sizes)


def _intensity_range(value: Any) -> tuple[float, float] | None:
    from napari_emsr.predict.intensity import checked_range

    return None if value is None else checked_range(value)


def _region(value: Any) -> tuple[slice, slice] | None:
    """Two slices (rows, columns); a (start, stop) pair becomes a slice. Bounds are checked against the image later."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError("region must be (rows, columns): two slices or two (start, stop) pairs of input pixels")
    parts = []
    for part in value:
        if isinstance(part, slice):
            if part.step not in (None, 1):
                raise ValueError("region slices cannot have a step")
            parts.append(slice(part.start, part.stop))
            continue
        try:
            start, stop = (int(v) for v in part)
        except (TypeError, ValueError):
            raise ValueError(
                f"region must be (rows, columns): two slices or two (start, stop) pairs of input pixels, got {value!r}"
            ) from None
        parts.append(slice(start, stop))
    return parts[0], parts[1]


@dataclass(frozen=True)
class PredictOptions:
    """How to run a prediction: tiling, device, intensities, what to predict, what to do with an output.

    Every field is checked when the options are made (see the module docstring); the defaults
    are resolved for the device and the model when the run is planned.

    Attributes
    ----------
    tile : int or "auto", optional
        Core size of a tile in input pixels (snapped up to the attention window); default on the
        CPU 256 (512 when the precision resolves to bf16), 1024 on a GPU. The network sees
        tile + 2 x (halo + blend) pixels per tile.
        ``"auto"``: timed on this device for this slice (:mod:`napari_emsr.predict.autotile`;
        the choice is cached).
    overlap : int, "auto" or "exact"
        The halo: context every output pixel has on each side, in input pixels (rounded up to the
        window). ``"auto"`` (the default, also for None): the network's effective receptive radius
        measured on this input (see :mod:`napari_emsr.predict.halo`; tiled output within about a
        quarter grey level of whole-slice output, at a fraction of the cost). ``"exact"``: the
        theoretical receptive radius, so tiled == whole-slice output up to float rounding. A
        number: that many pixels.
    blend : int, optional
        Half-width of the cross-fade between neighbouring tiles (default 2 attention windows).
    batch : int, optional
        Tiles per forward pass (default 1 on the CPU, 4 on a GPU); halved on out-of-memory errors,
        then the tile is halved.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``
        (a :class:`torch.device` is taken too; kept as its name).
    pixel_size : float or tuple of float, optional
        Input pixel size in nm (one number for y and x, or one per axis), overriding the file's.
    self_ensemble : bool
        Average the predictions of the 8 flips / rotations (8 x slower).
    intensity_range : (float, float), optional
        Raw intensities mapped to the network's 0 and 1, overriding the model's normalisation.
    region : (slice, slice), optional
        Only this (rows, columns) region of every slice, predicted with context read around it
        (identical to the same region of a whole-slice prediction). (start, stop) pairs are taken
        too and kept as slices.
    first_slice : int, optional
        Predict the unit holding this slice first, e.g. the slice on screen as a preview.
    resume : bool
        Continue an interrupted OME-Zarr run (same input, model and options; the input's content
        is compared too, by a digest of sampled slices recorded when the run started).
    overwrite : bool
        Replace an existing output (only once the new one is complete).
    precision : str
        ``"auto"`` (the default), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only): the arithmetic of the
        forward pass (bf16 / fp16 under autocast, the weights and the output in fp32). ``"auto"``: bf16
        on GPUs that have it and on CPUs with AMX-BF16, else fp32 (:func:`napari_emsr.device.resolve_precision`).
    pyramid : bool
        Give an OME-Zarr output a multiscale pyramid (y and x halved per level until no more than
        512 pixels; each slice's levels written with it), so that napari opens it as a multiscale
        layer and browses it fast. Default True; OME-TIFF outputs have none.
    """

    tile: int | str | None = None
    overlap: int | str = "auto"
    blend: int | None = None
    batch: int | None = None
    device: str | torch.device = "auto"
    pixel_size: float | tuple[float, ...] | None = None
    self_ensemble: bool = False
    intensity_range: tuple[float, float] | None = None
    region: tuple[slice, slice] | None = None
    first_slice: int | None = None
    resume: bool = False
    overwrite: bool = False
    pyramid: bool = True
    precision: str = "auto"

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {
            "tile": self.tile if self.tile in (None, "auto") else _whole("tile", self.tile, 1),
            "blend": None if self.blend is None else _whole("blend", self.blend, 0),
            "batch": None if self.batch is None else _whole("batch", self.batch, 1),
            "overlap": self._overlap(self.overlap),
            "device": device_spec(self.device),
            "pixel_size": _pixel_size(self.pixel_size),
            "self_ensemble": _switch("self_ensemble", self.self_ensemble),
            "intensity_range": _intensity_range(self.intensity_range),
            "region": _region(self.region),
            "first_slice": None if self.first_slice is None else _whole("first_slice", self.first_slice, 0),
            "resume": _switch("resume", self.resume),
            "overwrite": _switch("overwrite", self.overwrite),
            "pyramid": _switch("pyramid", self.pyramid),
            "precision": _precision(self.precision),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @staticmethod
    def _overlap(value: Any) -> int | str:
        if value is None:
            return "auto"
        if isinstance(value, str):
            if value not in _OVERLAP_WORDS:
                raise ValueError(f"overlap must be 'auto', 'exact' or a whole number >= 0, got {value!r}")
            return value
        try:
            return _whole("overlap", value, 0)
        except ValueError:
            raise ValueError(f"overlap must be 'auto', 'exact' or a whole number >= 0, got {value!r}") from None

    def replace(self, **changes: Any) -> PredictOptions:
        """Return a copy with ``changes`` (checked like the original); a TypeError for an unknown option."""
        _check_names(changes)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the options as plain values (JSON-ready: a region becomes two [start, stop] pairs)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.region is not None:
            out["region"] = [[part.start, part.stop] for part in self.region]
        if isinstance(self.pixel_size, tuple):
            out["pixel_size"] = list(self.pixel_size)
        if self.intensity_range is not None:
            out["intensity_range"] = list(self.intensity_range)
        return out


_NAMES = frozenset(f.name for f in fields(PredictOptions))


def _check_names(keywords: Mapping[str, Any]) -> None:
    unknown = sorted(set(keywords) - _NAMES)
    if unknown:
        known = ", ".join(sorted(_NAMES))
        raise TypeError(f"unknown prediction option(s) {', '.join(unknown)}; the options are {known}")


def build_options(options: PredictOptions | None = None, **keywords: Any) -> PredictOptions:
    """Return ``options`` with ``keywords`` applied (each a :class:`PredictOptions` field), validated.

    The one way the library's functions turn their convenience keywords into options:
    ``build_options(None, tile=64)`` is ``PredictOptions(tile=64)``; ``build_options(opts, resume=True)``
    is ``opts`` with ``resume=True``.
    """
    if options is not None and not isinstance(options, PredictOptions):
        raise TypeError(f"options must be a PredictOptions, got {type(options).__name__}")
    _check_names(keywords)
    if options is None:
        return PredictOptions(**keywords)
    return replace(options, **keywords) if keywords else options
