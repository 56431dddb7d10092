"""Reading and writing EM volumes.

Lazy readers (TIFF, OME-TIFF, ImageJ TIFF, slices, Zarr, OME-Zarr, MRC/MRCS, HDF5, N5) and atomic, slice-by-slice
writers (OME-TIFF, resumable OME-Zarr), and the export job that writes an array slice by slice
(:func:`iter_write`).
"""

from napari_emsr.io.export import WriteTarget, discard_partial, iter_write, write_image
from napari_emsr.io.readers import (
    FILE_SUFFIXES,
    HDF5_SUFFIXES,
    MRC_SUFFIXES,
    SLICE_SUFFIXES,
    TIFF_SUFFIXES,
    AmbiguousDatasetError,
    MissingPackageError,
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
