"""Open EM volumes lazily: TIFF, PNG, folders or globs of slices, Zarr / OME-Zarr, MRC, HDF5 and N5.

Nothing is loaded when a volume is opened: ``Volume.data`` is a dask array whose chunks are read
on demand (TIFF pages through tifffile's zarr store, one task per slice file, zarr chunks, an MRC
file's memory map, HDF5 chunks through h5py, N5 blocks through tensorstore).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path
from typing import Any, Sequence

import dask.array as da
import numpy as np

from napari_emsr.io.containers import AmbiguousDatasetError, normalise_dataset, split_dataset
from napari_emsr.io.formats import folder_files, glob_files, is_zarr, open_slices, open_tiff, open_zarr
from napari_emsr.io.hdf5 import open_hdf5
from napari_emsr.io.metadata import merge_pixel_size
from napari_emsr.io.mrc import open_mrc
from napari_emsr.io.n5 import is_n5, open_n5
from napari_emsr.io.volume import (
    FILE_SUFFIXES,
    HDF5_SUFFIXES,
    MRC_SUFFIXES,
    SLICE_SUFFIXES,
    TIFF_SUFFIXES,
    MissingPackageError,
    Volume,
    VolumeError,
    check_volume,
    natural_sort_key,
)

__all__ = [
    "Volume",
    "VolumeError",
    "AmbiguousDatasetError",
    "MissingPackageError",
    "open_volume",
    "as_volume",
    "natural_sort_key",
    "SLICE_SUFFIXES",
    "TIFF_SUFFIXES",
    "MRC_SUFFIXES",
    "HDF5_SUFFIXES",
    "FILE_SUFFIXES",
]

_FORMATS = (
    "a TIFF / OME-TIFF / ImageJ TIFF file, a PNG image, an MRC / MRCS file, an HDF5 file, a folder or glob of "
    "PNG/TIFF slices, a Zarr / OME-Zarr or an N5 container"
)


def open_volume(
    path: str | os.PathLike, *, pixel_size: float | Sequence[float] | None = None, dataset: str | None = None
) -> Volume:
    """Open an EM image or volume lazily.

    Parameters
    ----------
    path : str or path-like
        A TIFF / OME-TIFF / ImageJ TIFF file, a PNG image, a folder of PNG or TIFF slices, a glob
        of slices such as ``"scan/*.png"`` (sorted in natural order: 2 before 10), a Zarr /
        OME-Zarr (a group with ``multiscales``: its first dataset is read; or an array), an MRC /
        MRCS file (``.mrc``, ``.mrcs``, IMOD's ``.rec``, ``.st``, ``.ali``), an HDF5 file
        (``.h5``, ``.hdf5``, ``.hdf``) or an N5 container (a folder). In a container (HDF5, N5,
        Zarr) a dataset is named after a colon: ``"sample.h5:/volumes/raw"``; without a name the
        container must hold a single 2D/3D image.
    pixel_size : float or sequence of float, optional
        Pixel size in nanometres, overriding what the file says: one number for y and x, or one
        per axis of the data (z, y, x).
    dataset : str, optional
        The dataset to read in an HDF5, N5 or Zarr container (``"volumes/raw"``), instead of
        naming it in ``path``.

    Returns
    -------
    Volume
        ``data`` is a dask array, ``(z, y, x)`` or ``(y, x)``; ``pixel_size_nm`` comes from OME
        metadata, ImageJ metadata, TIFF resolution tags, the zarr multiscales, the MRC header or
        HDF5 / N5 attributes (see docs/file-formats.md). Close the volume (or use it as a context
        manager) to release the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (or a glob matches nothing).
    VolumeError
        (a ValueError) If the file cannot be read, is empty, is RGB / multichannel, or has more
        than three dimensions. :class:`AmbiguousDatasetError` (a VolumeError) if a container holds
        several images and none was named (it lists them); :class:`MissingPackageError` (also an
        ImportError) if the format needs an optional package that is not installed.
    """
    raw = os.fspath(path)
    raw, named = split_dataset(raw)
    if named is not None and dataset is not None and normalise_dataset(dataset) != named:
        raise ValueError(f"{raw}: the path names dataset {named!r} and dataset= names {dataset!r}: give one")
    dataset = named if named is not None else normalise_dataset(dataset)
    volume = _open(raw, dataset)
    try:
        check_volume(volume)
        volume.pixel_size_nm = merge_pixel_size(volume.pixel_size_nm, pixel_size, volume.ndim)
    except Exception:
        volume.close()
        raise
    return volume


def _open(raw: str, dataset: str | None) -> Volume:
    """Open ``raw`` with the reader for what it is (a folder, a file) and its name."""
    where = Path(raw)
    if not where.exists():
        if glob.has_magic(raw) and dataset is None:
            return open_slices(glob_files(raw), source=raw)
        raise FileNotFoundError(f"{raw}: no such file or folder")
    name = where.name.lower()
    if where.is_dir():
        if is_zarr(where) and not name.endswith(".n5"):
            return open_zarr(where, dataset)
        if is_n5(where):
            return open_n5(where, dataset)
        _no_dataset(where, dataset, "a folder of slices")
        return open_slices(folder_files(where), source=where)
    if name.endswith(HDF5_SUFFIXES):
        return open_hdf5(where, dataset)
    _no_dataset(where, dataset, "this file")
    if name.endswith(TIFF_SUFFIXES):
        return open_tiff(where)
    if name.endswith(MRC_SUFFIXES):
        return open_mrc(where)
    if where.suffix.lower() == ".png":
        return open_slices([where], source=where, stack=False)
    raise VolumeError(where, f"unsupported file type; give {_FORMATS}")


def _no_dataset(where: Path, dataset: str | None, what: str) -> None:
    if dataset is not None:
        raise VolumeError(where, f"{what} holds no datasets to choose from (got dataset {dataset!r})")


def as_volume(source: Any, *, pixel_size: float | Sequence[float] | None = None) -> tuple[Volume, bool]:
    """Return a :class:`Volume` from a path, a Volume, a dask array or an array-like.

    Returns ``(volume, owned)``; ``owned`` is True when this call opened a file that the caller
    should close.
    """
    if isinstance(source, Volume):
        if pixel_size is not None:
            sizes = merge_pixel_size(source.pixel_size_nm, pixel_size, source.ndim)
            source = dataclasses.replace(source, pixel_size_nm=sizes)  # shares the open files (not owned)
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
