"""Reader contribution: EM stacks opened lazily by :func:`napari_emsr.open_volume`.

TIFF / OME-TIFF / ImageJ TIFF files, folders of PNG or TIFF slices, Zarr / OME-Zarr, MRC / MRCS,
HDF5 and N5 become image layers backed by dask arrays (slices are read when shown). The pixel
size becomes the layer's ``scale`` in nanometres, and an OME-Zarr's NGFF translation its
``translate``, so that low- and high-resolution layers of the same sample overlay in world
coordinates. A pyramid (an OME-Zarr's datasets, an N5's ``s0, s1, ...``) becomes one multiscale
layer; an HDF5 or N5 container holding several images opens each as a layer.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["get_reader", "read_volume", "layer_geometry"]

#: suffixes that also name other kinds of files: read only when the header looks like an MRC's
_MAYBE_MRC = (".rec", ".st", ".ali")


def get_reader(path: str | os.PathLike | list[str] | tuple[str, ...]) -> Callable[[Any], list] | None:
    """Return the reader for ``path`` if napari-emsr can read it, else None (napari then asks others)."""
    from napari_emsr.io.volume import FILE_SUFFIXES, SLICE_SUFFIXES

    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    where = Path(os.fspath(path))
    if where.is_dir():
        from napari_emsr.io.formats import is_zarr
        from napari_emsr.io.n5 import is_n5

        if is_zarr(where) or is_n5(where) or any(p.suffix.lower() in SLICE_SUFFIXES for p in where.iterdir()):
            return read_volume
        return None
    name = where.name.lower()
    if name.endswith(_MAYBE_MRC):
        from napari_emsr.io.mrc import looks_like_mrc

        return read_volume if looks_like_mrc(where) else None
    return read_volume if name.endswith((*FILE_SUFFIXES, ".zarr")) else None


def read_volume(path: str | os.PathLike | list[str] | tuple[str, ...]) -> list[tuple[Any, dict[str, Any], str]]:
    """Open ``path`` lazily as image layers (raises a clear ValueError for unusable data).

    One layer, except for an HDF5 or N5 container holding several images: a layer for each (the
    ones that cannot be shown are left out with a warning saying why).
    """
    from napari_emsr.io import AmbiguousDatasetError, open_volume

    if isinstance(path, (list, tuple)):
        path = path[0]
    name = Path(os.fspath(path)).name
    try:
        return [_layer(open_volume(path), name)]
    except AmbiguousDatasetError as several:
        layers, problems = [], []
        for candidate in several.candidates:
            try:
                volume = open_volume(path, dataset=candidate.name)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            layers.append(_layer(volume, f"{name}:/{candidate.name}"))
        if not layers:
            raise
        for problem in problems:
            warnings.warn(f"not shown: {problem}", UserWarning, stacklevel=2)
        return layers


def _layer(volume: Any, name: str) -> tuple[Any, dict[str, Any], str]:
    """One image layer: the data (a list of levels for a pyramid), its name, contrast and geometry."""
    levels = list(volume.levels)
    data = levels or volume.data
    smallest = levels[-1] if levels else volume.data
    middle = np.asarray(smallest[smallest.shape[0] // 2] if smallest.ndim == 3 else smallest)
    low, high = float(np.nanmin(middle)), float(np.nanmax(middle))
    meta: dict[str, Any] = {
        "name": name,
        "axis_labels": ("z", "y", "x")[-volume.ndim :],
        "contrast_limits": (low, high if high > low else low + 1),
        "metadata": {"napari_emsr": {"path": str(volume.path), "format": volume.format,
                                     "pixel_size_nm": volume.pixel_size_nm}},
    }  # fmt: skip
    if levels:
        meta["multiscale"] = True
    meta.update(layer_geometry(volume.pixel_size_nm, volume.ndim, _ngff_translation(volume)))
    return (data, meta, "image")


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
