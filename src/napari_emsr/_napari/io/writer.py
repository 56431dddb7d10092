"""Writer contribution: image layers to OME-TIFF or OME-Zarr with their pixel size.

Layers are written slice by slice by the library's export job (:func:`napari_emsr.io.iter_write`,
through the atomic writers): nothing appears under the final name until every slice is written,
so a lazy (dask) layer larger than memory can be saved too. The pixel size comes from the layer's
``scale`` and ``units``; an OME-Zarr also keeps the layer's ``translate`` (an NGFF translation), so
that it reopens exactly where it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_ome_tiff", "write_ome_zarr"]


def write_ome_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer: one image layer to an OME-TIFF (``.ome.tif``)."""
    return [str(_write_layer(path, data, attributes))]


def write_ome_zarr(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer: one image layer to an OME-Zarr (``.ome.zarr``, NGFF 0.4)."""
    return [str(_write_layer(path, data, attributes))]


def _write_layer(path: str, data: Any, attributes: dict[str, Any]) -> Path:
    from napari_emsr._napari.common.layers import physical_geometry
    from napari_emsr.io import write_image

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
    return write_image(data, path, pixel_size_nm=sizes, translate=shift, overwrite=True)
