"""HDF5 files (ilastik, CREMI, Fiji's HDF5 plugins, the EMSR reference code), read lazily with h5py.

One dataset is read: the one named (``sample.h5:/volumes/raw``), else the only image in the file
(see :mod:`napari_emsr.io.containers`). The file is opened read-only and without an HDF5 file lock,
so that other programs can open it too (and so that it opens on network file systems without
locking), and stays open until :meth:`Volume.close`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from napari_emsr.io.containers import Candidate, choose_dataset, join_dataset, looks_like_image, read_chunks
from napari_emsr.io.metadata import attribute_pixel_size
from napari_emsr.io.volume import Volume, VolumeError, lazy_reads, squeeze_axes

__all__ = ["open_hdf5", "hdf5_images"]


def open_hdf5(path: Path, dataset: str | None = None) -> Volume:
    """Open one dataset of an HDF5 file as a lazy :class:`Volume` (read-only, chunk by chunk).

    ``dataset`` names it (a path inside the file, ``"volumes/raw"``); without it the file must
    hold one image. The volume's ``path`` is ``file.h5:/name`` when a dataset was named.
    """
    handle = _open(path)
    try:
        name = _dataset_name(handle, path, dataset)
        node = handle[name]
        where = Path(join_dataset(path, name)) if dataset else path
        chunks = read_chunks(node.shape, node.chunks, node.dtype.itemsize)
        data, release = lazy_reads(node, where, chunks)
        data, _ = squeeze_axes(data, _axistags(node), where)
        sizes = _pixel_size(node, data.ndim)
    except Exception:
        handle.close()
        raise
    return Volume(data, sizes, where, "hdf5", [handle.close, release])


def _open(path: Path) -> Any:
    import h5py

    try:
        try:
            return h5py.File(path, "r", locking=False)
        except ValueError as exc:  # an HDF5 library without the file-locking switch
            if "locking" not in str(exc):
                raise
            return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise VolumeError(path, f"not a readable HDF5 file ({exc})") from None


def hdf5_images(group: Any) -> tuple[list[Candidate], list[str]]:
    """Return the image datasets under an HDF5 group (names relative to it), and every dataset's name."""
    import h5py

    images: list[Candidate] = []
    names: list[str] = []

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            names.append(name)
            shape = tuple(int(n) for n in node.shape or ())
            if looks_like_image(shape, node.dtype):
                images.append(Candidate(name, shape, node.dtype))

    group.visititems(visit)
    return images, names


def _dataset_name(handle: Any, path: Path, dataset: str | None) -> str:
    """Return the path in the file of the dataset to read (named, or the only image under the named group)."""
    import h5py

    group = handle
    if dataset:
        node = handle.get(dataset)
        if isinstance(node, h5py.Dataset):
            return dataset
        if not isinstance(node, h5py.Group):
            images, _ = hdf5_images(handle)
            listing = ", ".join(c.describe() for c in images[:8]) or "none"
            raise VolumeError(path, f"has no dataset {dataset!r}; its images: {listing}")
        group = node
    images, names = hdf5_images(group)
    chosen = choose_dataset(images, Path(join_dataset(path, dataset)) if dataset else path, found=names)
    return f"{dataset}/{chosen.name}" if dataset else chosen.name


def _axistags(node: Any) -> str:
    """Axis letters from ilastik / vigra ``axistags`` (e.g. ``"zyxc"``), else ``""`` (the last two are y, x)."""
    raw = node.attrs.get("axistags") if "axistags" in node.attrs else None
    if raw is None:
        return ""
    try:
        tags = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        keys = "".join(str(axis["key"])[:1] for axis in tags["axes"])
    except (ValueError, KeyError, TypeError):
        return ""
    return keys if len(keys) == len(node.shape) else ""


def _pixel_size(node: Any, ndim: int) -> tuple[float | None, ...] | None:
    """Sizes from the dataset's attributes, else those of the groups above it (nearest first)."""
    while node is not None:
        sizes = attribute_pixel_size(_attributes(node), ndim)
        if sizes is not None:
            return sizes
        node = node.parent if node.name != "/" else None
    return None


def _attributes(node: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in node.attrs:
        try:
            found[key] = node.attrs[key]
        except (OSError, TypeError, ValueError):  # an attribute of a type h5py cannot read
            continue
    return found
