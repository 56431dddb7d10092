"""MRC / MRCS files (IMOD, SerialEM, MRC2014), memory-mapped with ``mrcfile``.

The data are a dask array over the file's memory map: a slice is read from disk when a chunk
is computed. The voxel size comes from the header (Å, converted to nm; see
:func:`napari_emsr.io.metadata.mrc_pixel_size` for unset sizes).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from napari_emsr.io.containers import read_chunks
from napari_emsr.io.metadata import mrc_pixel_size
from napari_emsr.io.volume import Volume, VolumeError, lazy_reads

__all__ = ["open_mrc", "looks_like_mrc", "MRC_MODES"]

#: modes napari-emsr reads: 0 int8 (uint8 in IMOD files that say so), 1 int16, 2 float32, 6 uint16, 12 float16
MRC_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}
_REFUSED_MODES = {
    3: "complex int16 (Fourier-space) data",
    4: "complex float32 (Fourier-space) data",
    16: "RGB colour (3 x uint8) data",
    101: "4-bit packed data",
}
_IMOD_STAMP = 1146047817  # "IMOD" in the header's extra bytes 152-155; imodFlags follow at 156
_IMOD_SIGNED_BYTES = 1


def open_mrc(path: Path) -> Volume:
    """Open an MRC / MRCS file (2D image, 3D volume or stack of images) as a lazy :class:`Volume`."""
    import mrcfile

    header = _header(path)
    mode = int(header.mode)
    if mode in _REFUSED_MODES:
        raise VolumeError(
            path,
            f"holds MRC mode {mode}, {_REFUSED_MODES[mode]}; napari-emsr super-resolves grey-scale images: "
            "convert it to mode 0, 1, 2 or 6 first (e.g. with IMOD's newstack -mode)",
        )
    if mode not in MRC_MODES:
        raise VolumeError(path, f"holds MRC mode {mode}, which is not a known image mode (0, 1, 2, 6 or 12)")
    mrc = _mmap(path, mrcfile)
    try:
        array = mrc.data
        if array is None:
            raise VolumeError(path, "the MRC header is too damaged to locate the image data")
        if mode == 0 and _imod_unsigned_bytes(header):
            array = array.view(np.uint8)
        sizes = mrc_pixel_size(_voxel_size(header), array.ndim, image_stack=array.ndim == 3 and int(header.mz) == 1)
        data, release = lazy_reads(array, path, read_chunks(array.shape, None, array.dtype.itemsize))
    except Exception:
        mrc.close()
        raise
    return Volume(data, sizes, path, "mrc", [mrc.close, release])


def _header(path: Path) -> Any:
    """Return the header, read permissively (a bad mode is reported by :func:`open_mrc`, in its own words)."""
    import mrcfile

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with mrcfile.open(path, mode="r", header_only=True, permissive=True) as mrc:
                header = mrc.header.copy()
        except (OSError, ValueError, EOFError) as exc:
            raise VolumeError(path, f"not a readable MRC file ({exc})") from None
    if header is None or int(header.nx) <= 0 or int(header.ny) <= 0:
        reason = "; ".join(str(w.message) for w in caught) or "no valid header"
        raise VolumeError(path, f"not a readable MRC file ({reason})")
    return header


def _mmap(path: Path, mrcfile: Any) -> Any:
    """Memory-map the file: strictly, else permissively (with a warning saying what is not standard)."""
    try:
        return mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, EOFError) as strict:
        problem = str(strict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        except (OSError, ValueError, EOFError) as exc:
            raise VolumeError(path, f"not a readable MRC file ({exc})") from None
    if mrc.data is None:
        mrc.close()
        raise VolumeError(path, f"not a readable MRC file ({problem})")
    warnings.warn(f"{path}: the MRC header is not standard ({problem}); read anyway", UserWarning, stacklevel=4)
    return mrc


def _voxel_size(header: Any) -> tuple[float, float, float]:
    """(x, y, z) in Å: the cell's length over its sampling, as ``mrcfile``'s ``voxel_size`` (0 for no sampling)."""
    cell = header.cella
    pairs = ((cell.x, header.mx), (cell.y, header.my), (cell.z, header.mz))
    x, y, z = (float(length) / int(m) if int(m) > 0 else 0.0 for length, m in pairs)
    return x, y, z


def _imod_unsigned_bytes(header: Any) -> bool:
    """Whether an IMOD header says its mode-0 bytes are unsigned (IMOD and SerialEM's default)."""
    stamp, flags = np.frombuffer(header.tobytes()[152:160], dtype=header.dtype["nx"])  # the header's byte order
    return int(stamp) == _IMOD_STAMP and not int(flags) & _IMOD_SIGNED_BYTES


def looks_like_mrc(path: Path) -> bool:
    """Whether ``path`` starts with a plausible MRC header (cheap: reads 224 bytes, no library)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(224)
    except OSError:
        return False
    if len(head) < 224:
        return False
    if head[208:212] == b"MAP ":
        return True
    for order in "<>":
        nx, ny, nz, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
        if 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**20 and int(mode) in (*MRC_MODES, *_REFUSED_MODES):
            return True
    return False
