"""N5 containers (Janelia, BigDataViewer, N5 Viewer, Paintera), read lazily with tensorstore.

zarr 3 no longer reads N5, so the blocks are read with Google's ``tensorstore`` (the optional
extra ``pip install 'napari-emsr[n5]'``); the metadata (``attributes.json``) are plain JSON, read
here, so that finding the dataset and its pixel size needs no extra package.

N5 lists axes fastest first (``dimensions: [x, y, z]``, blocks in that order); the volume's data
are in numpy order, (z, y, x): the axes are reversed when read. One dataset is read: a dataset
folder given as the path, the one named (``sample.n5:/volumes/raw`` or ``sample.n5/volumes/raw``),
else the only image in the container (see :mod:`napari_emsr.io.containers`); a pyramid's ``s0``
stands for it, and its levels ``s0, s1, ...`` become the volume's ``levels``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_emsr.io.containers import (
    Candidate,
    choose_dataset,
    is_next_level,
    looks_like_image,
    pyramid_level,
    read_chunks,
)
from napari_emsr.io.metadata import attribute_pixel_size
from napari_emsr.io.volume import N5_SUFFIXES, MissingPackageError, Volume, VolumeError, lazy_reads, squeeze_axes

__all__ = ["open_n5", "is_n5", "n5_images"]

#: how deep groups are searched for datasets
_MAX_DEPTH = 8


def is_n5(folder: Path) -> bool:
    """Whether ``folder`` is an N5 container, or a group or dataset inside one."""
    for node in (folder, *folder.absolute().parents):
        if node.name.lower().endswith(N5_SUFFIXES) or "n5" in _attributes(node):
            return True
    return _is_dataset(_attributes(folder))


def open_n5(path: Path, dataset: str | None = None) -> Volume:
    """Open one dataset of an N5 container as a lazy :class:`Volume` (numpy axis order).

    ``path`` is the container, a group or a dataset folder in it; ``dataset`` names a dataset
    (or a group holding one image) below ``path``. The volume's ``path`` is the dataset's folder
    when one was named or given, else ``path``.
    """
    target = path / dataset if dataset else path
    if not target.is_dir():
        images, _ = n5_images(path)
        listing = ", ".join(c.describe() for c in images[:8]) or "none"
        raise VolumeError(path, f"has no dataset {dataset!r}; its images: {listing}")
    attrs = _attributes(target)
    if _is_dataset(attrs):
        folder, where = target, target
    else:
        images, names = n5_images(target)
        chosen = choose_dataset(images, target, found=names)
        folder, where = target / chosen.name, (target if not dataset else target / chosen.name)
        attrs = _attributes(folder)
    data, release = _open_dataset(folder, attrs, where)
    try:
        axes = _axes(attrs)
        data, _ = squeeze_axes(data, axes, where)
        sizes = _pixel_size(folder, attrs, data.ndim)
        levels, releases = _levels(folder, data, axes, where)
    except Exception:
        release()
        raise
    return Volume(data, sizes, where, "n5", [release, *releases], levels=levels)


def n5_images(folder: Path) -> tuple[list[Candidate], list[str]]:
    """Return the image datasets below ``folder`` (names relative to it, shapes in numpy order), and every dataset's."""
    images: list[Candidate] = []
    names: list[str] = []

    def visit(node: Path, prefix: str, depth: int) -> None:
        for child in sorted(p for p in node.iterdir() if p.is_dir()):
            attrs = _attributes(child)
            name = f"{prefix}{child.name}"
            if _is_dataset(attrs):
                names.append(name)
                shape, dtype = _shape_dtype(attrs)
                if dtype is not None and looks_like_image(shape, dtype):
                    images.append(Candidate(name, shape, dtype))
            elif depth < _MAX_DEPTH:
                visit(child, f"{name}/", depth + 1)

    visit(folder, "", 0)
    return images, names


def _attributes(folder: Path) -> dict[str, Any]:
    try:
        with open(folder / "attributes.json", encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _is_dataset(attrs: dict[str, Any]) -> bool:
    return isinstance(attrs.get("dimensions"), list) and "dataType" in attrs


def _shape_dtype(attrs: dict[str, Any]) -> tuple[tuple[int, ...], np.dtype | None]:
    shape = tuple(int(n) for n in attrs["dimensions"])[::-1]
    try:
        dtype = np.dtype(str(attrs["dataType"]))
    except TypeError:
        dtype = None
    return shape, dtype


def _axes(attrs: dict[str, Any]) -> str:
    """Axis letters in numpy order from an ``axes`` attribute (``["x", "y", "z"]``), else ``""``."""
    axes = attrs.get("axes")
    if not isinstance(axes, list) or len(axes) != len(attrs.get("dimensions", [])):
        return ""
    return "".join(str(a)[:1] for a in axes)[::-1]


def _open_dataset(folder: Path, attrs: dict[str, Any], where: Path) -> tuple[da.Array, Any]:
    try:
        import tensorstore as ts
    except ImportError:
        raise MissingPackageError(where, "N5", "tensorstore", "n5") from None
    spec = {"driver": "n5", "kvstore": {"driver": "file", "path": str(folder.resolve())}}
    try:
        store = ts.open(spec, read=True).result()
    except Exception as exc:  # noqa: BLE001  (tensorstore reports every problem as a ValueError-like status)
        raise VolumeError(where, f"not a readable N5 dataset ({exc})") from None
    array = _TensorStoreArray(store)
    blocks = [int(n) for n in attrs.get("blockSize") or array.shape[::-1]][::-1]
    return lazy_reads(array, where, read_chunks(array.shape[::-1], blocks, array.dtype.itemsize), reverse=True)


class _TensorStoreArray:
    """An array-like over a tensorstore (indexing reads the blocks it needs, as numpy)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.shape = tuple(int(n) for n in store.shape)
        self.dtype = np.dtype(store.dtype.numpy_dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.store[key].read().result())


def _pixel_size(folder: Path, attrs: dict[str, Any], ndim: int) -> tuple[float | None, ...] | None:
    """Return the dataset's sizes (its attributes, else the nearest group's) times its downsampling factors."""
    sizes = None
    node, node_attrs = folder.absolute(), attrs
    for _ in range(_MAX_DEPTH):
        sizes = attribute_pixel_size(node_attrs, ndim, order="xyz")
        if sizes is not None or node.name.lower().endswith(N5_SUFFIXES) or "n5" in node_attrs or node.parent == node:
            break  # found, or the container's root reached
        node = node.parent
        node_attrs = _attributes(node)
    if sizes is None:
        return None
    factors = _downsampling(folder, attrs)
    if factors is None:
        return sizes
    factors = ([1.0] * ndim + factors[::-1])[-ndim:]
    return tuple(None if s is None else s * f for s, f in zip(sizes, factors, strict=True))


def _downsampling(folder: Path, attrs: dict[str, Any]) -> list[float] | None:
    """Downsampling factors (x, y, z) of a pyramid level: its own, or its group's list for ``s<k>``."""
    own = attrs.get("downsamplingFactors")
    if isinstance(own, list) and own and all(isinstance(f, (int, float)) for f in own):
        return [float(f) for f in own]
    level = pyramid_level(folder.name)
    if level is None:
        return None
    group = _attributes(folder.parent)
    for key in ("scales", "downsamplingFactors"):
        table = group.get(key)
        if isinstance(table, list) and level < len(table) and isinstance(table[level], list):
            return [float(f) for f in table[level]]
    return None


def _levels(folder: Path, data: da.Array, axes: str, where: Path) -> tuple[tuple[da.Array, ...], list[Any]]:
    """Return the levels ``s0, s1, ...`` of the pyramid ``folder`` (an ``s0``) heads, each smaller than the last."""
    if pyramid_level(folder.name) != 0:
        return (), []
    levels, releases = [data], []
    k = 1
    while (folder.parent / f"s{k}").is_dir():
        attrs = _attributes(folder.parent / f"s{k}")
        if not _is_dataset(attrs):
            break
        level, release = _open_dataset(folder.parent / f"s{k}", attrs, where)
        releases.append(release)
        try:
            level, _ = squeeze_axes(level, axes, where)
        except VolumeError:
            break
        if not is_next_level(level.shape, levels[-1].shape):
            break
        levels.append(level)
        k += 1
    return (tuple(levels) if len(levels) > 1 else ()), releases
