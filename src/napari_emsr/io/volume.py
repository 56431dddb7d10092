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
    "MRC_SUFFIXES",
    "HDF5_SUFFIXES",
    "N5_SUFFIXES",
    "FILE_SUFFIXES",
    "MissingPackageError",
    "lazy_reads",
]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SLICE_SUFFIXES = (".png", *TIFF_SUFFIXES)
#: MRC / CCP4-style files: IMOD volumes (.rec), stacks (.st, .ali), SerialEM and MRC2014 files
MRC_SUFFIXES = (".mrc", ".mrcs", ".rec", ".st", ".ali")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
#: N5 containers are folders; their names usually end in .n5
N5_SUFFIXES = (".n5",)
#: every file (not folder) name ending :func:`napari_emsr.open_volume` reads
FILE_SUFFIXES = (*SLICE_SUFFIXES, *MRC_SUFFIXES, *HDF5_SUFFIXES)


class VolumeError(ValueError):
    """A volume cannot be used: unreadable, empty, of the wrong dimensionality or colour."""

    def __init__(self, path: Any, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class MissingPackageError(VolumeError):
    """Reading this format needs an optional package that is not installed; the message says how to get it."""

    def __init__(self, path: Any, what: str, package: str, extra: str) -> None:
        self.package, self.extra = package, extra
        super().__init__(
            path, f"reading {what} needs the optional package {package}: pip install 'napari-emsr[{extra}]'"
        )


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
        ``"tiff"``, ``"ome-tiff"``, ``"imagej-tiff"``, ``"slices"``, ``"zarr"``, ``"ome-zarr"``,
        ``"mrc"``, ``"hdf5"``, ``"n5"`` or ``"array"``.
    levels : tuple of dask.array.Array
        Every level of a resolution pyramid (an OME-Zarr's datasets, an N5's ``s0, s1, ...``),
        full resolution first (``levels[0]`` is ``data``), each halving or so the size of the one
        before; empty when the source holds one level. For display: computations use ``data``.
    """

    data: da.Array
    pixel_size_nm: tuple[float | None, ...] | None = None
    path: Path | None = None
    format: str = "array"
    _closers: list[Callable[[], Any]] = field(default_factory=list, repr=False)
    levels: tuple[da.Array, ...] = ()

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
    if volume.ndim == 3 and shape[-1] in (3, 4) and shape[0] > 4 and volume.format in ("array", "zarr", "hdf5", "n5"):
        raise VolumeError(where, f"has shape {shape}, which looks like an RGB(A) image; convert it to grey first")
    if 0 in shape:
        raise VolumeError(where, f"is empty (shape {shape})")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)) or dtype == np.bool_:
        raise VolumeError(where, f"has data type {dtype}; give integer (e.g. uint8, uint16) or floating-point data")


class _NamedReads:
    """An array-like over a file's array whose read errors name the file (dask reads it chunk by chunk).

    ``transpose`` reverses the axes (an N5 dataset is indexed x, y, z; the data are z, y, x).
    :meth:`release` drops the file's array: later reads raise a :class:`VolumeError`.
    """

    def __init__(self, array: Any, path: Any, *, reverse: bool = False) -> None:
        self.array, self.path, self.reverse = array, path, reverse
        shape = tuple(int(n) for n in array.shape)
        self.shape, self.dtype = (shape[::-1] if reverse else shape), np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def release(self) -> None:
        self.array = None

    def __getitem__(self, key: Any) -> Any:
        if self.array is None:
            raise VolumeError(self.path, "the volume was closed: open it again to read its data")
        try:
            if self.reverse:
                keys = key if isinstance(key, tuple) else (key,)
                return np.ascontiguousarray(np.asarray(self.array[keys[::-1]]).transpose())
            block = self.array[key]
            return np.array(block) if isinstance(block, np.memmap) else block  # a copy: the map closes with the file
        except (MemoryError, VolumeError):
            raise
        except Exception as exc:  # noqa: BLE001  (codecs, stores and file handles raise many kinds)
            raise VolumeError(
                self.path,
                f"reading the pixel data failed ({type(exc).__name__}: {exc}); the file may be truncated or corrupt",
            ) from exc


def reading_names_file(array: Any, path: Any) -> da.Array:
    """Return a lazy dask array of a zarr-like ``array`` (chunk by chunk); a failed read names ``path``."""
    return lazy_reads(array, path, tuple(array.chunks))[0]


def lazy_reads(
    array: Any, path: Any, chunks: tuple[int, ...], *, reverse: bool = False
) -> tuple[da.Array, Callable[[], None]]:
    """Return a lazy dask array of ``array`` in blocks of ``chunks``, and a function that releases it.

    Nothing is read until the dask array is computed; a failed read names ``path``, and a read
    after the release function was called raises a :class:`VolumeError` (closed). With
    ``reverse``, the axes of ``array`` are reversed (``chunks`` are in the reversed order too).
    """
    import uuid

    reads = _NamedReads(array, path, reverse=reverse)
    data = da.from_array(reads, chunks=chunks, name=f"emsr-read-{uuid.uuid4().hex}", fancy=False)
    return data, reads.release


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
