"""Reading and writing EM volumes.

Lazy readers (TIFF, OME-TIFF, ImageJ TIFF, slices, Zarr, OME-Zarr) and atomic, slice-by-slice
writers (OME-TIFF, resumable OME-Zarr), and the export job that writes an array slice by slice
(:func:`iter_write`).
"""

from napari_emsr.io.export import WriteTarget, discard_partial, iter_write, write_image
from napari_emsr.io.readers import (
    SLICE_SUFFIXES,
    TIFF_SUFFIXES,
    Volume,
    VolumeError,
    as_volume,
    natural_sort_key,
    open_volume,
)
from napari_emsr.io.writers import (
    OmeTiffWriter,
    OmeZarrWriter,
    ngff_multiscale,
    ngff_transforms,
    open_writer,
    output_kind,
    partial_path,
    write_zarr_slice,
)

__all__ = [
    "Volume",
    "VolumeError",
    "open_volume",
    "as_volume",
    "natural_sort_key",
    "SLICE_SUFFIXES",
    "TIFF_SUFFIXES",
    "OmeTiffWriter",
    "OmeZarrWriter",
    "open_writer",
    "output_kind",
    "partial_path",
    "write_zarr_slice",
    "ngff_transforms",
    "ngff_multiscale",
    "iter_write",
    "write_image",
    "discard_partial",
    "WriteTarget",
]
