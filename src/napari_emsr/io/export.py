"""Writing an image or a stack (numpy or dask) to OME-TIFF or OME-Zarr slice by slice, as a job.

:func:`iter_write` is the export job of the napari writer contribution and of the Export panel:
it writes through the atomic writers of :mod:`napari_emsr.io.writers` (nothing appears under
the final name until every slice is written, so a lazy array larger than memory can be saved
too), yields :class:`napari_emsr.events.Event` objects of job ``"export"`` counted in slices, and
stops between two slices when closed, leaving nothing behind.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from napari_emsr.events import Clock, Event
from napari_emsr.io.writers import ngff_multiscale, open_writer, output_kind, partial_path

__all__ = ["WriteTarget", "iter_write", "write_image", "discard_partial", "JOB"]

#: the ``job`` of the events of :func:`iter_write`
JOB = "export"


@dataclass(frozen=True)
class WriteTarget:
    """The payload of :func:`iter_write`'s ``"start"`` event: what is written where.

    Attributes
    ----------
    path : Path
        The output.
    kind : str
        ``"ome-tiff"`` or ``"ome-zarr"``.
    shape : tuple of int
        The image's shape.
    dtype : str
        Its dtype.
    """

    path: Path
    kind: str
    shape: tuple[int, ...]
    dtype: str


def iter_write(
    data: Any,
    path: str | os.PathLike,
    *,
    pixel_size_nm: Sequence[float | None] | None = None,
    translate: Sequence[float] | None = None,
    overwrite: bool = False,
    pyramid: bool = True,
) -> Generator[Event, None, None]:
    """Write a (z, y, x) or (y, x) array (numpy or dask) slice by slice, yielding progress events.

    Parameters
    ----------
    data : array-like or dask array
        The image or stack; read one slice at a time.
    path : path
        ``*.ome.tif`` / ``*.tif`` or ``*.ome.zarr`` / ``*.zarr``.
    pixel_size_nm : sequence of (float or None), optional
        The pixel size per axis in nm.
    translate : sequence of float, optional
        Where the image starts, per axis in physical units (kept by an OME-Zarr as an NGFF translation).
    overwrite : bool
        Replace an existing output (once the new one is complete).
    pyramid : bool
        Give an OME-Zarr a multiscale pyramid, written slice by slice with the data (see
        :func:`napari_emsr.io.writers.pyramid_shapes`); OME-TIFFs have none.

    Yields
    ------
    Event
        Job ``"export"``, unit ``"slice"``: ``"start"`` (payload a :class:`WriteTarget`), one
        ``"slice"`` per slice written (payload its index, None for a 2D image), ``"done"`` (payload
        the path written). Closing the generator stops between two slices and leaves nothing: an
        OME-TIFF's temporary file and an OME-Zarr's partial folder are deleted.
    """
    shape, dtype = tuple(int(n) for n in np.shape(data)), np.dtype(data.dtype)
    if len(shape) not in (2, 3):
        raise ValueError(f"can only write 2D images and 3D (z, y, x) stacks, not shape {shape}")
    multiscale = ngff_multiscale(Path(path).name, len(shape), pixel_size_nm, translate=translate)
    writer = open_writer(
        path, shape=shape, dtype=dtype, pixel_size_nm=pixel_size_nm, multiscale=multiscale,
        fingerprint={"source": "napari layer", "shape": list(shape)}, overwrite=overwrite, pyramid=pyramid,
    )  # fmt: skip
    planes = shape[0] if len(shape) == 3 else 1
    clock = Clock()
    target = WriteTarget(Path(path), output_kind(path), shape, dtype.name)
    writer.open()
    try:
        yield Event(JOB, "start", 0, planes, "slice", None, 0.0, f"writing {Path(path).name}", target)
        for i in range(planes):
            index = i if len(shape) == 3 else None
            writer.write(index, np.asarray(data[i] if len(shape) == 3 else data))
            message = f"slice {i + 1}/{planes}" if planes > 1 else ""
            yield Event(JOB, "slice", i + 1, planes, "slice", clock.eta(i + 1, planes), clock.elapsed(), message, index)
        result = writer.commit()
    except BaseException:
        writer.abort()
        discard_partial(path)
        raise
    yield Event(JOB, "done", planes, planes, "slice", 0.0, clock.elapsed(), "", result)


def write_image(data: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Run :func:`iter_write` to the end; returns the path written (``options``: those of :func:`iter_write`)."""
    result = None
    for event in iter_write(data, path, **options):
        if event.kind == "done":
            result = event.payload
    if result is None:  # iter_write always ends with the written path unless it raised
        raise RuntimeError(f"{path}: writing ended without a result")
    return Path(result)


def discard_partial(path: str | os.PathLike) -> None:
    """Delete the hidden partial folder an unfinished OME-Zarr output leaves (an OME-TIFF leaves none)."""
    if output_kind(path) == "ome-zarr":
        shutil.rmtree(partial_path(path), ignore_errors=True)
