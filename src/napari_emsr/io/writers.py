"""Write super-resolved volumes slice by slice to OME-TIFF or OME-Zarr, atomically.

Both writers work under a temporary name next to the target and rename it into place only when
every slice is written, so a cancelled or failed run never leaves a file that looks complete:

- OME-TIFF: a hidden ``.NAME.<pid>-<id>.partial`` file, deleted if the run does not finish.
- OME-Zarr (NGFF 0.4, zarr format 2): a hidden ``.NAME.partial`` folder that is *kept* when the run
  stops early. It records which slices are done (the ``emsr_done`` array) and a fingerprint of the
  run's settings, so that ``resume=True`` (``--resume``) continues it. Each slice is its own set of
  chunks: slices can be written by independent processes (e.g. dask workers) without locking.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from napari_emsr._atomic import temporary_sibling

__all__ = [
    "output_kind",
    "partial_path",
    "OmeTiffWriter",
    "OmeZarrWriter",
    "open_writer",
    "write_zarr_slice",
    "ngff_transforms",
]

_TIFF_ENDINGS = (".ome.tif", ".ome.tiff", ".tif", ".tiff")
_ZARR_ENDINGS = (".ome.zarr", ".zarr")
_DONE = "emsr_done"
_ATTR = "napari_emsr"
_BIGTIFF_ABOVE = 2**31  # bytes; classic TIFF offsets are 32-bit


def output_kind(path: str | os.PathLike) -> str:
    """``"ome-tiff"`` or ``"ome-zarr"`` from the output's name; ValueError for anything else."""
    name = Path(path).name.lower()
    if name.endswith(_TIFF_ENDINGS):
        return "ome-tiff"
    if name.endswith(_ZARR_ENDINGS):
        return "ome-zarr"
    raise ValueError(f"{path}: the output must end in .ome.tif, .ome.tiff, .tif, .tiff, .ome.zarr or .zarr")


def partial_path(path: str | os.PathLike) -> Path:
    """Where an OME-Zarr output is built until it is complete (a hidden sibling folder)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} does not exist; create the output folder first")


def _replace(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, removing an existing ``target`` (file or folder) first."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() and source.is_dir():
        target.unlink()
    os.replace(source, target)


class OmeTiffWriter:
    """Write an OME-TIFF page by page (slices in order); BigTIFF when it may exceed 2 GiB."""

    kind = "ome-tiff"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        shape: tuple[int, ...],
        dtype: Any,
        pixel_size_nm: Sequence[float | None] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self.pixel_size_nm = tuple(pixel_size_nm) if pixel_size_nm else (None,) * len(self.shape)
        self.overwrite = overwrite
        self.already_complete = False
        self._tmp: Path | None = None
        self._tif: Any = None
        self._next = 0
        _check_target(self.path, overwrite)

    def open(self) -> np.ndarray:
        """Start writing; returns the done mask (always all False: a TIFF cannot be resumed)."""
        import tifffile

        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self._tmp = temporary_sibling(self.path)
        self._tif = tifffile.TiffWriter(self._tmp, bigtiff=nbytes > _BIGTIFF_ABOVE - 2**26, ome=False)
        return np.zeros(self.shape[0] if len(self.shape) == 3 else 1, dtype=bool)

    def _description(self) -> str:
        import tifffile

        three = len(self.shape) == 3
        z, y, x = (self.pixel_size_nm if three else (None, *self.pixel_size_nm))[-3:]
        meta: dict[str, Any] = {"axes": "ZYX" if three else "YX"}
        for axis, size in (("X", x), ("Y", y), ("Z", z if three else None)):
            if size is not None:
                meta[f"PhysicalSize{axis}"], meta[f"PhysicalSize{axis}Unit"] = float(size), "nm"
        omexml = tifffile.OmeXml()
        pages = self.shape[0] if three else 1
        omexml.addimage(self.dtype, self.shape, (pages, 1, 1, *self.shape[-2:], 1), **meta)
        return omexml.tostring()

    def write(self, index: int | None, plane: np.ndarray) -> None:
        """Write slice ``index`` (None for a 2D output); slices must come in order 0, 1, 2, ..."""
        if self._tif is None:
            raise RuntimeError("call open() before write()")
        expected = self._next if len(self.shape) == 3 else None
        if index != expected:
            raise ValueError(f"OME-TIFF slices must be written in order: expected {expected}, got {index}")
        y, x = self.pixel_size_nm[-2:]
        extra: dict[str, Any] = {}
        if x is not None and y is not None:
            extra = {"resolution": (1e7 / x, 1e7 / y), "resolutionunit": "CENTIMETER"}
        first = self._next == 0
        self._tif.write(
            np.ascontiguousarray(plane, dtype=self.dtype),
            contiguous=True,
            description=self._description() if first else None,
            metadata=None,
            photometric="minisblack",
            **extra,
        )
        self._next += 1

    def commit(self) -> Path:
        """Close and rename into place; returns the final path."""
        self._tif.close()
        self._tif = None
        _check_target(self.path, self.overwrite)
        _replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; nothing is left behind."""
        if self._tif is not None:
            self._tif.close()
            self._tif = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None


def ngff_transforms(pixel_size_nm: Sequence[float | None] | None, ndim: int, *, scale: int, offset=None):
    """NGFF axes and coordinate transformations of a super-resolved output.

    ``pixel_size_nm`` is the *input's* (per axis or None); the output's y/x size is that over
    ``scale``. The translation puts output pixel centres where they lie inside the input pixels
    (the first output pixel's centre is ``(1 / scale - 1) / 2`` input pixels from the first input
    pixel's centre), plus ``offset`` input pixels (y, x) for a region of interest.
    """
    sizes = list(pixel_size_nm) if pixel_size_nm else [None] * ndim
    names = "zyx"[-ndim:]
    axes, scales, shifts = [], [], []
    for i, (name, size) in enumerate(zip(names, sizes)):
        spatial_xy = i >= ndim - 2
        factor = scale if spatial_xy else 1
        unit_size = 1.0 if size is None else float(size)
        axis = {"name": name, "type": "space"}
        if size is not None:
            axis["unit"] = "nanometer"
        axes.append(axis)
        scales.append(unit_size / factor)
        start = (offset[i - (ndim - 2)] if offset is not None and spatial_xy else 0) * unit_size
        shifts.append(start + ((1.0 / factor - 1.0) / 2 * unit_size if spatial_xy else 0.0))
    transforms = [{"type": "scale", "scale": scales}, {"type": "translation", "translation": shifts}]
    return axes, transforms


class OmeZarrWriter:
    """Write an OME-Zarr (NGFF 0.4) slice by slice, resumable, renamed into place when complete."""

    kind = "ome-zarr"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        shape: tuple[int, ...],
        dtype: Any,
        multiscale: dict[str, Any],
        fingerprint: dict[str, Any],
        overwrite: bool = False,
        resume: bool = False,
        chunk: int = 1024,
    ) -> None:
        self.path, self.partial = Path(path), partial_path(path)
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self.multiscale, self.fingerprint = multiscale, json.loads(json.dumps(fingerprint))
        self.overwrite, self.resume, self.chunk = overwrite, resume, int(chunk)
        self.already_complete = False
        self._check()

    def _check(self) -> None:
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path.parent} does not exist; create the output folder first")
        if self.resume and not self.partial.exists() and self.path.exists():
            if self._stored_state(self.path).get("complete") and self._matches(self.path):
                self.already_complete = True
                return
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        if self.partial.exists() and not (self.resume or self.overwrite):
            raise FileExistsError(
                f"{self.partial} holds the partial result of an interrupted run: pass resume=True (CLI: --resume) "
                "to continue it, or overwrite=True (--overwrite) to start again"
            )
        if self.partial.exists() and self.resume:
            self._matches(self.partial, strict=True)

    @staticmethod
    def _stored_state(store: Path) -> dict[str, Any]:
        import zarr

        try:
            return dict(zarr.open_group(str(store), mode="r").attrs.get(_ATTR) or {})
        except Exception:
            return {}

    def _matches(self, store: Path, strict: bool = False) -> bool:
        stored = self._stored_state(store).get("fingerprint")
        if stored == self.fingerprint:
            return True
        if not strict:
            return False
        if not isinstance(stored, dict):
            raise ValueError(f"{store} is not a napari-emsr partial result; delete it or pass --overwrite")
        keys = sorted(k for k in set(stored) | set(self.fingerprint) if stored.get(k) != self.fingerprint.get(k))
        detail = "; ".join(f"{k}: was {stored.get(k)!r}, now {self.fingerprint.get(k)!r}" for k in keys[:4])
        raise ValueError(
            f"cannot resume {store}: it was started with other settings ({detail}); rerun with the same "
            "input, model and options, or pass --overwrite to start again"
        )

    def open(self) -> np.ndarray:
        """Create (or reopen, when resuming) the partial store; returns the done mask per slice."""
        import zarr

        if self.already_complete:
            return np.ones(self.shape[0] if len(self.shape) == 3 else 1, dtype=bool)
        if self.partial.exists() and self.resume:
            return np.asarray(zarr.open_group(str(self.partial), mode="r")[_DONE][:], dtype=bool)
        if self.partial.exists():
            shutil.rmtree(self.partial)
        group = zarr.open_group(str(self.partial), mode="w", zarr_format=2)
        tile = tuple(min(n, self.chunk) for n in self.shape[-2:])
        group.create_array(
            "0",
            shape=self.shape,
            chunks=(1, *tile) if len(self.shape) == 3 else tile,
            dtype=self.dtype,
            fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        slices = self.shape[0] if len(self.shape) == 3 else 1
        group.create_array(_DONE, shape=(slices,), chunks=(1,), dtype=bool, fill_value=False)
        group.attrs.update(
            {"multiscales": [self.multiscale], _ATTR: {"complete": False, "fingerprint": self.fingerprint}}
        )
        return np.zeros(slices, dtype=bool)

    def write(self, index: int | None, plane: np.ndarray) -> None:
        """Write slice ``index`` (None for 2D) and mark it done."""
        write_zarr_slice(self.partial, index, plane)

    def commit(self) -> Path:
        """Mark the store complete and rename it into place; returns the final path."""
        import zarr

        if self.already_complete:
            return self.path
        group = zarr.open_group(str(self.partial), mode="r+")
        done = np.asarray(group[_DONE][:], dtype=bool)
        if not done.all():
            raise RuntimeError(f"{self.partial}: {int((~done).sum())} slices are not done; cannot finish it")
        group.attrs[_ATTR] = {"complete": True, "fingerprint": self.fingerprint}
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} appeared while writing; the result is kept at {self.partial}")
        _replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        """Keep the partial store: its finished slices are reused by ``resume=True``."""


def write_zarr_slice(store: str | os.PathLike, index: int | None, plane: np.ndarray) -> None:
    """Write one output slice into a partial OME-Zarr store and mark it done.

    A plain function of a path, so that independent processes (dask workers) can each write their
    own slices; each slice is a separate set of chunks, and the done flag is written last.
    """
    import zarr

    group = zarr.open_group(str(store), mode="r+")
    array = group["0"]
    if index is None:
        array[...] = plane
    else:
        array[index] = plane
    group[_DONE][0 if index is None else index] = True


def open_writer(path: str | os.PathLike, **options: Any) -> OmeTiffWriter | OmeZarrWriter:
    """The writer for ``path``'s kind; OME-TIFF ignores ``multiscale``, ``fingerprint``, ``resume``."""
    kind = output_kind(path)
    if kind == "ome-tiff":
        if options.get("resume"):
            raise ValueError(f"{path}: only OME-Zarr outputs can be resumed; write to a .ome.zarr to use --resume")
        keep = {k: options[k] for k in ("shape", "dtype", "pixel_size_nm", "overwrite") if k in options}
        return OmeTiffWriter(path, **keep)
    names = ("shape", "dtype", "multiscale", "fingerprint", "overwrite", "resume", "chunk")
    keep = {k: options[k] for k in names if k in options}
    return OmeZarrWriter(path, **keep)
