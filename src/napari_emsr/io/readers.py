"""Open EM volumes lazily: TIFF / OME-TIFF / ImageJ TIFF, folders or globs of slices, Zarr / OME-Zarr.

Nothing is loaded when a volume is opened: ``Volume.data`` is a dask array whose chunks are read
on demand (TIFF pages through tifffile's zarr store, one task per slice file, zarr chunks).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Sequence

import dask.array as da
import numpy as np

from napari_emsr.io.formats import folder_files, glob_files, is_zarr, open_slices, open_tiff, open_zarr
from napari_emsr.io.metadata import merge_pixel_size
from napari_emsr.io.volume import (
    SLICE_SUFFIXES,
    TIFF_SUFFIXES,
    Volume,
    VolumeError,
    check_volume,
    natural_sort_key,
)

__all__ = ["Volume", "VolumeError", "open_volume", "as_volume", "natural_sort_key", "SLICE_SUFFIXES", "TIFF_SUFFIXES"]

_FORMATS = (
    "a TIFF / OME-TIFF / ImageJ TIFF file, a PNG image, a folder or glob of PNG/TIFF slices, or a Zarr / OME-Zarr"
)


def open_volume(path: str | os.PathLike, *, pixel_size: float | Sequence[float] | None = None) -> Volume:
    """Open an EM image or volume lazily.

    Parameters
    ----------
    path : str or path-like
        A TIFF / OME-TIFF / ImageJ TIFF file, a PNG image, a folder of PNG or TIFF slices, a glob
        of slices such as ``"scan/*.png"`` (sorted in natural order: 2 before 10), or a Zarr /
        OME-Zarr (a group with ``multiscales``: its first dataset is read; or an array).
    pixel_size : float or sequence of float, optional
        Pixel size in nanometres, overriding what the file says: one number for y and x, or one
        per axis of the data (z, y, x).

    Returns
    -------
    Volume
        ``data`` is a dask array, ``(z, y, x)`` or ``(y, x)``; ``pixel_size_nm`` comes from OME
        metadata, ImageJ metadata, TIFF resolution tags or the zarr multiscales. Close the volume
        (or use it as a context manager) to release the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (or a glob matches nothing).
    VolumeError
        (a ValueError) If the file cannot be read, is empty, is RGB / multichannel, or has more
        than three dimensions.
    """
    raw = os.fspath(path)
    where = Path(raw)
    if not where.exists():
        if glob.has_magic(raw):
            volume = open_slices(glob_files(raw), source=raw)
        else:
            raise FileNotFoundError(f"{raw}: no such file or folder")
    elif where.is_dir():
        volume = open_zarr(where) if is_zarr(where) else open_slices(folder_files(where), source=where)
    elif where.name.lower().endswith(TIFF_SUFFIXES):
        volume = open_tiff(where)
    elif where.suffix.lower() == ".png":
        volume = open_slices([where], source=where, stack=False)
    else:
        raise VolumeError(where, f"unsupported file type; give {_FORMATS}")
    try:
        check_volume(volume)
        volume.pixel_size_nm = merge_pixel_size(volume.pixel_size_nm, pixel_size, volume.ndim)
    except Exception:
        volume.close()
        raise
    return volume


def as_volume(source: Any, *, pixel_size: float | Sequence[float] | None = None) -> tuple[Volume, bool]:
    """Return a :class:`Volume` from a path, a Volume, a dask array or an array-like.

    Returns ``(volume, owned)``; ``owned`` is True when this call opened a file that the caller
    should close.
    """
    if isinstance(source, Volume):
        if pixel_size is not None:
            sizes = merge_pixel_size(source.pixel_size_nm, pixel_size, source.ndim)
            source = Volume(source.data, sizes, source.path, source.format, source._closers)
        return source, False
    if isinstance(source, (str, os.PathLike)):
        return open_volume(source, pixel_size=pixel_size), True
    if isinstance(source, da.Array):
        data = source
    else:
        array = np.asarray(source)
        data = da.from_array(array, chunks=(1, *array.shape[1:]) if array.ndim == 3 else array.shape)
    volume = Volume(data)
    check_volume(volume, where="the input array")
    volume.pixel_size_nm = merge_pixel_size(None, pixel_size, volume.ndim)
    return volume, False
