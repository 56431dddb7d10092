"""Reader contribution: EM stacks opened lazily by :func:`napari_emsr.open_volume`.

TIFF / OME-TIFF / ImageJ TIFF files, folders of PNG or TIFF slices and Zarr / OME-Zarr become
one image layer backed by a dask array (slices are read when shown). The pixel size becomes the
layer's ``scale`` in nanometres, and an OME-Zarr's NGFF translation its ``translate``, so that
low- and high-resolution layers of the same sample overlay in world coordinates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["get_reader", "read_volume", "layer_geometry"]

_SUFFIXES = (".tif", ".tiff", ".btf", ".png", ".zarr")


def get_reader(path: str | os.PathLike | list[str] | tuple[str, ...]) -> Callable[[Any], list] | None:
    """Return the reader for ``path`` if napari-emsr can read it, else None (napari then asks others)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    where = Path(os.fspath(path))
    if where.is_dir():
        from napari_emsr.io import SLICE_SUFFIXES
        from napari_emsr.io.formats import is_zarr

        if is_zarr(where) or any(p.suffix.lower() in SLICE_SUFFIXES for p in where.iterdir()):
            return read_volume
        return None
    return read_volume if where.name.lower().endswith(_SUFFIXES) else None


def read_volume(path: str | os.PathLike | list[str] | tuple[str, ...]) -> list[tuple[Any, dict[str, Any], str]]:
    """Open ``path`` lazily as one image layer (raises a clear ValueError for unusable data)."""
    from napari_emsr.io import open_volume

    if isinstance(path, (list, tuple)):
        path = path[0]
    volume = open_volume(path)
    data = volume.data
    middle = np.asarray(data[data.shape[0] // 2] if data.ndim == 3 else data)
    low, high = float(np.nanmin(middle)), float(np.nanmax(middle))
    meta: dict[str, Any] = {
        "name": Path(os.fspath(path)).name,
        "axis_labels": ("z", "y", "x")[-data.ndim :],
        "contrast_limits": (low, high if high > low else low + 1),
        "metadata": {"napari_emsr": {"path": str(volume.path), "format": volume.format,
                                     "pixel_size_nm": volume.pixel_size_nm}},
    }  # fmt: skip
    meta.update(layer_geometry(volume.pixel_size_nm, data.ndim, _ngff_translation(volume)))
    return [(data, meta, "image")]


def layer_geometry(
    pixel_size_nm: Sequence[float | None] | None, ndim: int, translate_nm: Sequence[float] | None = None
) -> dict[str, Any]:
    """``scale``, ``translate`` and ``units`` of a layer with this pixel size (nm per axis).

    Unknown in-plane sizes leave the layer in pixels. An unknown z spacing is shown equal to the
    in-plane pixel size (it only sets how far apart slices are drawn).
    """
    sizes: list[float | None] = list(pixel_size_nm) if pixel_size_nm else [None] * ndim
    if any(s is None for s in sizes[-2:]):
        return {}
    if ndim == 3 and sizes[0] is None:
        sizes[0] = sizes[1]
    # every size is known here: the in-plane ones were checked, an unknown z was filled in
    geometry: dict[str, Any] = {"scale": tuple(float(s) for s in sizes if s is not None), "units": ("nm",) * ndim}
    if translate_nm is not None:
        geometry["translate"] = tuple(float(t) for t in translate_nm)
    return geometry


def _ngff_translation(volume: Any) -> tuple[float, ...] | None:
    """Return the translation (nm, per axis of the data) of an OME-Zarr's first dataset, if it has one."""
    if volume.format != "ome-zarr" or volume.path is None:
        return None
    import zarr

    from napari_emsr.io.metadata import unit_to_nm

    try:
        attrs: dict[str, Any] = dict(zarr.open_group(str(volume.path), mode="r").attrs)
        multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
        if not multiscales:
            return None
        multiscale = multiscales[0]
        axes = multiscale["axes"]
        shift = np.zeros(len(axes))
        transforms = list(multiscale["datasets"][0].get("coordinateTransformations", []))
        transforms += list(multiscale.get("coordinateTransformations", []))
        for transform in transforms:
            if transform.get("type") == "translation":
                shift += np.asarray(transform["translation"], dtype=float)
        named: dict[str, float | None] = {}
        for axis, value in zip(axes, shift, strict=False):
            factor = unit_to_nm(axis.get("unit")) if axis.get("unit") else None
            named[axis["name"]] = value * factor if factor else None
        values = [named.get(name) for name in "zyx"[-volume.ndim :]]
    except Exception:  # zarr raises many kinds for other layouts: then the layer has no translation
        return None
    known = [float(v) for v in values if v is not None]
    return tuple(known) if len(known) == len(values) else None
