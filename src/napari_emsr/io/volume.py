"""The :class:`Volume` returned by the readers, and checks shared by every format."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dask.array as da
import numpy as np

__all__ = [
    "Volume",
    "VolumeError",
    "natural_sort_key",
    "check_volume",
    "squeeze_axes",
    "TIFF_SUFFIXES",
    "SLICE_SUFFIXES",
]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SLICE_SUFFIXES = (".png", *TIFF_SUFFIXES)


class VolumeError(ValueError):
    """A volume cannot be used: unreadable, empty, of the wrong dimensionality or colour."""

    def __init__(self, path: Any, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(eq=False)
class Volume:
    """A lazily read image or stack of slices.

    Attributes
    ----------
    data : dask.array.Array
        ``(z, y, x)`` for a stack of slices, ``(y, x)`` for one image; read on demand.
    pixel_size_nm : tuple of (float or None), or None
        Physical size of a pixel along each axis of ``data``, in nanometres; an entry is None where
        that axis' size is unknown, and the whole is None when nothing is known.
    path : Path or None
        Where the data comes from (None for in-memory arrays).
    format : str
        ``"tiff"``, ``"ome-tiff"``, ``"imagej-tiff"``, ``"slices"``, ``"zarr"``, ``"ome-zarr"`` or
        ``"array"``.
    """

    data: da.Array
    pixel_size_nm: tuple[float | None, ...] | None = None
    path: Path | None = None
    format: str = "array"
    _closers: list[Callable[[], Any]] = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """The data's shape as plain ints."""
        return tuple(int(n) for n in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """The data's numpy dtype."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions (2 or 3)."""
        return self.data.ndim

    def close(self) -> None:
        """Release open files (the data cannot be read afterwards)."""
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> "Volume":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def natural_sort_key(text: str | os.PathLike) -> tuple:
    """Sort key that orders numbers by value: ``slice2.png`` before ``slice10.png``."""
    parts = re.split(r"(\d+)", os.fspath(text).lower())
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


def check_volume(volume: Volume, where: Any = None) -> None:
    """Refuse a volume napari-emsr cannot super-resolve (VolumeError saying why and what to do)."""
    where = where or volume.path
    shape, dtype = volume.shape, volume.dtype
    if volume.ndim not in (2, 3):
        raise VolumeError(
            where,
            f"has shape {shape} ({volume.ndim} dimensions); napari-emsr super-resolves 2D images and 3D "
            "(z, y, x) stacks of grey-scale slices: select one channel / time point first",
        )
    if volume.ndim == 3 and shape[-1] in (3, 4) and shape[0] > 4 and volume.format in ("array", "zarr"):
        raise VolumeError(where, f"has shape {shape}, which looks like an RGB(A) image; convert it to grey first")
    if 0 in shape:
        raise VolumeError(where, f"is empty (shape {shape})")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)) or dtype == np.bool_:
        raise VolumeError(where, f"has data type {dtype}; give integer (e.g. uint8, uint16) or floating-point data")


class _NamedReads:
    """An array-like over a file's array whose read errors name the file (dask reads it chunk by chunk)."""

    def __init__(self, array: Any, path: Any) -> None:
        self.array, self.path = array, path
        self.shape, self.dtype = tuple(int(n) for n in array.shape), np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.array[key]
        except (MemoryError, VolumeError):
            raise
        except Exception as exc:  # noqa: BLE001  (codecs, stores and file handles raise many kinds)
            raise VolumeError(
                self.path,
                f"reading the pixel data failed ({type(exc).__name__}: {exc}); the file may be truncated or corrupt",
            ) from exc


def reading_names_file(array: Any, path: Any) -> da.Array:
    """Return a lazy dask array of a zarr-like ``array`` (chunk by chunk); a failed read names ``path``."""
    import uuid

    return da.from_array(
        _NamedReads(array, path), chunks=tuple(array.chunks), name=f"emsr-read-{uuid.uuid4().hex}", fancy=False
    )


def squeeze_axes(data: da.Array, axes: str, where: Any) -> tuple[da.Array, list[int]]:
    """Drop singleton axes, refuse colour / extra axes; returns (data as (z,) y, x; kept axis indices)."""
    if data.ndim < 2:
        raise VolumeError(
            where,
            f"has shape {tuple(data.shape)} ({data.ndim} dimension{'s' if data.ndim != 1 else ''}); the input must "
            "be a 2D image or a 3D (z, y, x) stack of grey-scale slices",
        )
    axes = axes.upper()
    if len(axes) != data.ndim or "Y" not in axes or "X" not in axes:
        axes = "".join("Q" for _ in range(data.ndim - 2)) + "YX"
    keep = [i for i, a in enumerate(axes) if a in "YX" or data.shape[i] != 1]
    for i in keep:
        if axes[i] in "CS":
            raise VolumeError(
                where,
                f"has {data.shape[i]} colour channels / samples (axes {axes}, shape {tuple(data.shape)}); "
                "napari-emsr super-resolves grey-scale EM: convert to grey or select one channel first",
            )
    stack = [i for i in keep if axes[i] not in "YX"]
    if len(stack) > 1:
        raise VolumeError(
            where,
            f"has {len(stack) + 2} non-trivial dimensions (axes {axes}, shape {tuple(data.shape)}); napari-emsr "
            "super-resolves 2D images and 3D (z, y, x) stacks: select one time point / channel first",
        )
    order = stack + [axes.index("Y"), axes.index("X")]
    squeezed = data[tuple(slice(None) if i in keep else 0 for i in range(data.ndim))]
    rank = {old: new for new, old in enumerate(keep)}
    return squeezed.transpose([rank[i] for i in order]), order
