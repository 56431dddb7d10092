"""Writer contribution: image layers to OME-TIFF or OME-Zarr with their pixel size.

Layers are written slice by slice through the library's atomic writers
(:func:`napari_emsr.io.open_writer`): nothing appears under the final name until every slice is
written, so a lazy (dask) layer larger than memory can be saved too. The pixel size comes from
the layer's ``scale`` and ``units``; an OME-Zarr also keeps the layer's ``translate`` (an NGFF
translation), so that it reopens exactly where it was.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

__all__ = ["write_ome_tiff", "write_ome_zarr", "iter_write", "discard_partial"]


def write_ome_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer: one image layer to an OME-TIFF (``.ome.tif``)."""
    return [str(_write_layer(path, data, attributes))]


def write_ome_zarr(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer: one image layer to an OME-Zarr (``.ome.zarr``, NGFF 0.4)."""
    return [str(_write_layer(path, data, attributes))]


def _write_layer(path: str, data: Any, attributes: dict[str, Any]) -> Path:
    from napari_emsr._napari.common.layers import physical_geometry

    # TypeError, not ValueError: napari takes a writer's ValueError for "no writer" and hides it
    if attributes.get("rgb"):
        raise TypeError(f"layer '{attributes.get('name')}' is RGB; napari-emsr writes grey-scale images only")
    if attributes.get("multiscale"):
        data = data[0]
    ndim = np.ndim(data)
    if ndim not in (2, 3):
        raise TypeError(f"layer '{attributes.get('name')}' has {ndim} dimensions; napari-emsr writes 2D and 3D images")
    sizes, shift = physical_geometry(
        attributes.get("scale", (1.0,) * ndim),
        attributes.get("translate", (0.0,) * ndim),
        attributes.get("units", ("pixel",) * ndim),
    )
    result = None
    for event in iter_write(data, path, pixel_size_nm=sizes, translate=shift, overwrite=True):
        result = event.result
    if result is None:  # iter_write always ends with the written path unless it raised
        raise RuntimeError(f"{path}: writing ended without a result")
    return Path(result)


def _multiscale(name: str, ndim: int, sizes: Sequence[float | None] | None, shift: Sequence[float] | None) -> dict:
    """Return the NGFF 0.4 multiscale entry of a one-level image with this pixel size and translation."""
    sizes = list(sizes) if sizes else [None] * ndim
    axes = [{"name": n, "type": "space", **({"unit": "nanometer"} if s is not None else {})}
            for n, s in zip("zyx"[-ndim:], sizes, strict=False)]  # fmt: skip
    transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [1.0 if s is None else float(s) for s in sizes]}]
    if shift is not None and any(shift):
        transforms.append({"type": "translation", "translation": [float(t) for t in shift]})
    datasets = [{"path": "0", "coordinateTransformations": transforms}]
    return {"version": "0.4", "name": name, "axes": axes, "datasets": datasets}


def iter_write(
    data: Any,
    path: str | os.PathLike,
    *,
    pixel_size_nm: Sequence[float | None] | None = None,
    translate: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Generator[Any, None, None]:
    """Write a (z, y, x) or (y, x) array (numpy or dask) slice by slice, yielding progress.

    Yields :class:`napari_emsr.predict.Progress` events (``"start"``, one ``"slice"`` per slice,
    ``"done"`` with the path as ``result``). Closing the generator stops between two slices and
    leaves nothing: an OME-TIFF's temporary file and an OME-Zarr's partial folder are deleted.
    """
    from napari_emsr.io.writers import open_writer
    from napari_emsr.predict import Progress

    shape, dtype = tuple(int(n) for n in np.shape(data)), np.dtype(data.dtype)
    if len(shape) not in (2, 3):
        raise ValueError(f"can only write 2D images and 3D (z, y, x) stacks, not shape {shape}")
    multiscale = _multiscale(Path(path).name, len(shape), pixel_size_nm, translate)
    writer = open_writer(
        path, shape=shape, dtype=dtype, pixel_size_nm=pixel_size_nm, multiscale=multiscale,
        fingerprint={"source": "napari layer", "shape": list(shape)}, overwrite=overwrite,
    )  # fmt: skip
    planes = shape[0] if len(shape) == 3 else 1
    started = time.perf_counter()
    writer.open()
    try:
        yield Progress("start", 0, planes, None, 0.0, 0, planes, shape)
        for i in range(planes):
            writer.write(i if len(shape) == 3 else None, np.asarray(data[i] if len(shape) == 3 else data))
            elapsed = time.perf_counter() - started
            eta = elapsed * (planes - i - 1) / (i + 1)
            yield Progress("slice", i + 1, planes, eta, elapsed, i + 1, planes, shape, slice_index=i)
        result = writer.commit()
    except BaseException:
        writer.abort()
        discard_partial(path)
        raise
    yield Progress("done", planes, planes, 0.0, time.perf_counter() - started, planes, planes, shape, result=result)


def discard_partial(path: str | os.PathLike) -> None:
    """Delete the hidden partial folder an unfinished OME-Zarr output leaves (an OME-TIFF leaves none)."""
    from napari_emsr.io.writers import output_kind, partial_path

    if output_kind(path) == "ome-zarr":
        shutil.rmtree(partial_path(path), ignore_errors=True)
