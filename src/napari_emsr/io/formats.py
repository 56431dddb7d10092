"""Format readers: TIFF / OME-TIFF / ImageJ TIFF, folders and globs of PNG/TIFF slices, Zarr / OME-Zarr.

Each returns a :class:`~napari_emsr.io.volume.Volume` whose data are read on demand. MRC, HDF5
and N5 have modules of their own (:mod:`~napari_emsr.io.mrc`, :mod:`~napari_emsr.io.hdf5`,
:mod:`~napari_emsr.io.n5`).
"""

from __future__ import annotations

import contextlib
import glob
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_emsr.io.containers import AmbiguousDatasetError, Candidate, is_next_level
from napari_emsr.io.metadata import imagej_pixel_size, ngff_pixel_size, ome_pixel_size, resolution_pixel_size
from napari_emsr.io.volume import (
    SLICE_SUFFIXES,
    TIFF_SUFFIXES,
    Volume,
    VolumeError,
    natural_sort_key,
    reading_names_file,
    squeeze_axes,
)

__all__ = ["open_tiff", "open_slices", "folder_files", "glob_files", "open_zarr", "is_zarr"]


# -- TIFF ---------------------------------------------------------------------------------------
def open_tiff(path: Path) -> Volume:
    """Open a TIFF file (one image or a stack) as a lazy :class:`Volume`."""
    import tifffile
    import zarr

    broken = _BrokenPageList()
    with broken.watch():
        try:
            tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
            raise VolumeError(path, f"not a readable TIFF file ({exc})") from None
    try:
        with broken.watch():
            if not tif.series:
                raise VolumeError(path, "not a readable TIFF file: it holds no image")
            series = tif.series[0]
        _check_codec(path, series.keyframe)
        _check_extent(path, tif, series, broken.messages)
        store = tif.aszarr(series=0, level=0)
        data = reading_names_file(zarr.open(store, mode="r"), path)
        data, order = squeeze_axes(data, series.axes, path)
        kind, sizes = _tiff_pixel_size(tif, series)
        sizes = tuple(sizes[i] for i in order)  # sizes follow the series axes
    except Exception:
        tif.close()
        raise
    return Volume(data, tuple(sizes), path, kind, [store.close, tif.close])


class _BrokenPageList:
    """Collects tifffile's reports of a broken list of pages (a truncated or corrupt file).

    tifffile stops at the first page it cannot reach and logs it, so a file cut short would
    otherwise just look like a shorter stack.
    """

    _SIGNS = ("invalid page offset", "corrupted tag list", "invalid offset to page", "invalid circular reference")

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextlib.contextmanager
    def watch(self):
        import logging

        messages = self.messages

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                text = record.getMessage()
                if any(sign in text for sign in _BrokenPageList._SIGNS):
                    messages.append(text)

        handler = Handler(logging.ERROR)
        log = logging.getLogger("tifffile")
        log.addHandler(handler)
        try:
            yield
        finally:
            log.removeHandler(handler)


#: the most a compressed TIFF's pixel data may shrink (1:1e6): beyond it the header is not believed
_MAX_COMPRESSION = 10**6


def _check_extent(path: Any, tif: Any, series: Any, broken: list[str]) -> None:
    """Refuse a TIFF whose header claims more pixel data than the file holds (truncated or forged).

    Checked before any pixel is read: the claimed size of an uncompressed image against the file's
    size, the data of every page it lists against the end of the file, pages that are missing,
    and tifffile's reports of a list of pages that breaks off.
    """
    from napari_emsr.io.writers import human_bytes

    size = int(tif.filehandle.size)
    shape, dtype = tuple(int(n) for n in series.shape), np.dtype(series.dtype)
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    what = f"the TIFF header claims an image of shape {shape} {dtype} ({human_bytes(claimed)} of pixels)"
    tail = "the file is truncated or its header is corrupt; refusing it before reading any pixel"
    if broken:
        listed = len(tif.pages)
        detail = broken[0].split("> ", 1)[-1]
        raise VolumeError(
            path,
            f"the TIFF is truncated or corrupt: its list of pages breaks off after page {listed} ({detail}; the "
            f"file holds {human_bytes(size)}); refusing it rather than reading a shorter stack",
        )
    uncompressed = series.keyframe.compression == 1
    if uncompressed and claimed > size:
        raise VolumeError(path, f"{what}, but the file holds only {human_bytes(size)}: {tail}")
    pages = list(series.pages)
    missing = sum(page is None for page in pages)
    if missing:
        raise VolumeError(path, f"{what}, but {missing} of its {len(pages)} pages are missing from the file: {tail}")
    stored = 0
    for index, page in enumerate(pages):
        offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
        ends = [o + c for o, c in zip(offsets, counts, strict=False) if c]
        if ends and max(ends) > size:
            raise VolumeError(
                path,
                f"page {index}'s pixel data ends at byte {max(ends)}, beyond the end of the file ({size} bytes): "
                f"{tail}",
            )
        stored += int(sum(counts))
    if not uncompressed and len(pages) == int(np.prod(shape[:-2] or (1,))) and claimed > _MAX_COMPRESSION * max(
        stored, 1
    ):
        raise VolumeError(
            path,
            f"{what} from {human_bytes(stored)} of compressed data, a ratio no codec reaches: {tail}",
        )


def _check_codec(path: Any, page: Any) -> None:
    import tifffile

    if page.compression not in tifffile.TIFF.DECOMPRESSORS:
        name = getattr(page.compression, "name", page.compression)
        raise VolumeError(
            path,
            f"the TIFF is compressed with {name}, which needs the 'imagecodecs' package to decode: "
            "pip install imagecodecs (or save the TIFF uncompressed or with zlib/deflate)",
        )


def _tiff_pixel_size(tif: Any, series: Any) -> tuple[str, tuple[float | None, ...]]:
    """(format name, sizes for the letters Z, Y, X of the series axes, in the series' axes order)."""
    import tifffile

    page = series.keyframe
    z = y = x = None
    kind = "tiff"
    if tif.is_ome and tif.ome_metadata:
        kind = "ome-tiff"
        try:
            images = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
            image = images[0] if isinstance(images, list) else images
            z, y, x = ome_pixel_size(image["Pixels"])
        except (KeyError, TypeError, IndexError, ValueError):
            pass
    elif tif.is_imagej and tif.imagej_metadata is not None:
        kind = "imagej-tiff"
        z, y, x = imagej_pixel_size(tif.imagej_metadata, page)
    if y is None and x is None and kind != "imagej-tiff":
        y, x = resolution_pixel_size(page)
    lookup = {"Z": z, "Y": y, "X": x}
    return kind, tuple(lookup.get(a) for a in series.axes.upper())


# -- folders and globs of slices ----------------------------------------------------------------
def folder_files(folder: Path) -> list[Path]:
    """Return the PNG and TIFF slices in ``folder``, in natural order (VolumeError if none)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(SLICE_SUFFIXES)]
    if not files:
        raise VolumeError(folder, "the folder holds no PNG or TIFF slices (nor is it a Zarr or an N5 container)")
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def glob_files(pattern: str) -> list[Path]:
    """Return the files matching a glob pattern, in natural order (FileNotFoundError if none)."""
    files = [Path(p) for p in glob.glob(pattern) if Path(p).is_file()]
    if not files:
        raise FileNotFoundError(f"{pattern}: no file matches this pattern")
    return sorted(files, key=natural_sort_key)


def _slice_header(path: Path) -> tuple[tuple[int, ...], np.dtype, Any]:
    """(shape, dtype, tifffile page or None) of one slice file, without reading its pixels."""
    if path.suffix.lower() == ".png":
        from PIL import Image

        try:
            with Image.open(path) as img:
                mode, size = img.mode, img.size
        except (OSError, ValueError) as exc:
            raise VolumeError(path, f"not a readable PNG image ({exc})") from None
        dtypes = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I": np.int32, "F": np.float32}
        if mode not in dtypes:
            raise VolumeError(path, f"is a {mode} PNG; napari-emsr needs grey-scale images: convert to grey first")
        return (size[1], size[0]), np.dtype(dtypes[mode]), None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            _check_codec(path, series.keyframe)
            shape, dtype, axes = series.shape, series.dtype, series.axes
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
        raise VolumeError(path, f"not a readable TIFF slice ({exc})") from None
    squeezed = tuple(n for n, a in zip(shape, axes, strict=False) if n != 1 or a in "YX")
    if len(squeezed) != 2:
        raise VolumeError(path, f"a slice must be one 2D grey image; this file has shape {shape} (axes {axes})")
    return squeezed, np.dtype(dtype), None


def _read_slice(path: str, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    try:
        if path.lower().endswith(".png"):
            from PIL import Image

            with Image.open(path) as img:
                array = np.asarray(img)
        else:
            import tifffile

            array = tifffile.imread(path, key=0)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  (PIL, tifffile and the codecs raise many kinds)
        raise VolumeError(
            path, f"reading the slice failed ({type(exc).__name__}: {exc}); the file may be truncated or corrupt"
        ) from exc
    array = np.squeeze(array) if array.ndim > 2 else array
    if array.shape != tuple(shape):
        raise VolumeError(path, f"slice has shape {array.shape}, the first slice has {tuple(shape)}")
    return array.astype(dtype, copy=False)


def open_slices(files: list[Path], *, source: Any, stack: bool = True) -> Volume:
    """Open a list of same-shape slice files lazily, stacked (z, y, x) or as one image."""
    shape, dtype, _ = _slice_header(files[0])
    for other in files[1:]:
        other_shape, other_dtype, _ = _slice_header(other)
        if (other_shape, other_dtype) != (shape, dtype):
            raise VolumeError(
                other, f"slice has shape {other_shape} and type {other_dtype}, but {files[0].name} has {shape}, {dtype}"
            )
    from dask import delayed

    lazy = [
        da.from_delayed(delayed(_read_slice, pure=True)(str(f), shape, dtype), shape=shape, dtype=dtype) for f in files
    ]
    data = da.stack(lazy) if stack else lazy[0]
    sizes = _first_slice_pixel_size(files[0], stack)
    return Volume(data, sizes, Path(source), "slices")


def _first_slice_pixel_size(path: Path, stack: bool) -> tuple[float | None, ...] | None:
    if not path.name.lower().endswith(TIFF_SUFFIXES):
        return None
    import tifffile

    with tifffile.TiffFile(path) as tif:
        _, sizes = _tiff_pixel_size(tif, tif.series[0])
        axes = tif.series[0].axes.upper()
    lookup = dict(zip(axes, sizes, strict=False))
    y, x = lookup.get("Y"), lookup.get("X")
    return (lookup.get("Z"), y, x) if stack else (y, x)


# -- Zarr / OME-Zarr ----------------------------------------------------------------------------
def is_zarr(folder: Path) -> bool:
    """Whether ``folder`` is a Zarr store (by its name or its metadata files)."""
    markers = (".zarray", ".zgroup", "zarr.json")
    return folder.name.lower().endswith(".zarr") or any((folder / m).exists() for m in markers)


def _multiscales(attrs: Any) -> list | None:
    """Return the NGFF ``multiscales`` list (0.4: top-level attribute; 0.5: under ``ome``)."""
    attrs = dict(attrs)
    found = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    return found if isinstance(found, list) and found else None


def open_zarr(path: Path, dataset: str | None = None) -> Volume:
    """Open a Zarr or OME-Zarr store (its full-resolution level) as a lazy :class:`Volume`.

    ``dataset`` names an array (or a group) inside the store. An OME-Zarr pyramid's levels become
    the volume's ``levels`` (for display; ``data`` is the full-resolution level).
    """
    import zarr

    if dataset:
        if not (path / dataset).is_dir():
            raise VolumeError(path, f"has no array {dataset!r}")
        path = path / dataset
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many kinds for a broken store
        raise VolumeError(path, f"not a readable Zarr ({type(exc).__name__}: {exc})") from None
    sizes: tuple[float | None, ...] | None = None
    axes = ""
    kind = "zarr"
    lower: list[Any] = []
    if isinstance(node, zarr.Group):
        array, sizes, axes, kind, lower = _zarr_group_array(node, path)
    else:
        array = node
        parent = _parent_multiscale(path)
        if parent is not None:
            sizes, axes, kind = parent
    data = reading_names_file(array, path)
    data, order = squeeze_axes(data, axes, path)
    if sizes is not None and len(sizes) == array.ndim:
        sizes = tuple(sizes[i] for i in order)
    return Volume(data, sizes, path, kind, levels=_pyramid(data, lower, axes, path))


def _pyramid(data: da.Array, lower: list[Any], axes: str, path: Path) -> tuple[da.Array, ...]:
    """Return ``data`` and the lower levels that follow it as a pyramid (each smaller), or () for one level."""
    levels = [data]
    for array in lower:
        try:
            level, _ = squeeze_axes(reading_names_file(array, path), axes, path)
        except VolumeError:
            break
        if not is_next_level(level.shape, levels[-1].shape):
            break
        levels.append(level)
    return tuple(levels) if len(levels) > 1 else ()


def _zarr_group_array(group: Any, path: Path) -> tuple[Any, Any, str, str, list[Any]]:
    """(full-resolution array, its sizes, axis letters, format, the lower levels' arrays)."""
    multiscales = _multiscales(group.attrs)
    if multiscales:
        ms = multiscales[0]
        datasets = ms.get("datasets") or []
        if not datasets:
            raise VolumeError(path, "the OME-Zarr multiscales lists no datasets")
        key = datasets[0]["path"]
        axes = "".join(str(a.get("name", "q") if isinstance(a, dict) else a)[:1] for a in ms.get("axes", []))
        try:
            array = group[key]
        except KeyError:
            raise VolumeError(path, f"the OME-Zarr lists dataset {key!r}, which is missing") from None
        lower = []
        for entry in datasets[1:]:
            try:
                lower.append(group[entry["path"]])
            except (KeyError, TypeError):
                break  # a missing level ends the pyramid; the full-resolution level still opens
        return array, ngff_pixel_size(ms, 0), axes, "ome-zarr", lower
    keys = sorted(group.array_keys())
    if len(keys) > 1:
        arrays = [Candidate(k, tuple(int(n) for n in group[k].shape), np.dtype(group[k].dtype)) for k in keys]
        raise AmbiguousDatasetError(path, arrays)  # lists them and says how to name one
    if not keys:
        raise VolumeError(path, "a Zarr group without OME multiscales and without arrays: give the path of one array")
    return group[keys[0]], None, "", "zarr", []


def _parent_multiscale(path: Path) -> tuple[tuple[float | None, ...], str, str] | None:
    """Pixel sizes of ``group/<path>`` when the parent group's multiscales lists that dataset."""
    import zarr

    try:
        parent = zarr.open_group(str(path.parent), mode="r")
    except Exception:
        return None
    for ms in _multiscales(parent.attrs) or []:
        for index, dataset in enumerate(ms.get("datasets") or []):
            if str(dataset.get("path")) == path.name:
                axes = "".join(str(a.get("name", "q"))[:1] for a in ms.get("axes", []) if isinstance(a, dict))
                return ngff_pixel_size(ms, index), axes, "ome-zarr"
    return None
