"""Write super-resolved volumes slice by slice to OME-TIFF or OME-Zarr, atomically.

Both writers work under a temporary name next to the target and rename it into place only when
every slice is written, so a cancelled or failed run never leaves a file that looks complete:

- OME-TIFF: a hidden ``.NAME.<pid>-<id>.partial`` file, deleted if the run does not finish.
- OME-Zarr (NGFF 0.4, zarr format 2): a hidden ``.NAME.partial`` folder that is *kept* when the run
  stops early. It records which slices are done (the ``emsr_done`` array) and a fingerprint of the
  run's settings, so that ``resume=True`` continues it. Each slice is its own set of
  chunks: slices can be written by independent processes (e.g. dask workers) without locking.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from napari_emsr._atomic import SPACE_ERRNOS, remove_path, remove_stale_temporaries, temporary_sibling
from napari_emsr.errors import EMSRError, Hint, HintedValueError, OutputExistsError, PartialOutputError

__all__ = [
    "output_kind",
    "partial_path",
    "OutputSpaceError",
    "ResumeError",
    "PartialOutputExists",
    "space_error",
    "OmeTiffWriter",
    "OmeZarrWriter",
    "open_writer",
    "write_zarr_slice",
    "ngff_transforms",
    "ngff_multiscale",
    "pyramid_shapes",
    "halve",
    "with_pyramid",
    "human_bytes",
    "read_done",
]

_TIFF_ENDINGS = (".ome.tif", ".ome.tiff", ".tif", ".tiff")
_ZARR_ENDINGS = (".ome.zarr", ".zarr")
_DONE = "emsr_done"
_ATTR = "napari_emsr"
_BIGTIFF_ABOVE = 2**31  # bytes; classic TIFF offsets are 32-bit


class ResumeError(HintedValueError):
    """A partial OME-Zarr cannot be continued: it was made from another input, model or settings.

    ``detail`` says what differs; the hint is to start again (``overwrite``), or to delete
    ``partial``, the store.
    """

    def __init__(self, problem: str, *, partial: Path) -> None:
        self.problem, self.partial = problem, Path(partial)
        super().__init__(problem, Hint("overwrite", True, f"to start again (or delete {self.partial})"))


class PartialOutputExists(PartialOutputError):
    """A partial result of an interrupted run is in the way: resume it or overwrite it (``partial``: the store)."""

    def __init__(self, partial: Path) -> None:
        self.partial = Path(partial)
        super().__init__(
            f"{self.partial} holds the partial result of an interrupted run",
            Hint("resume", True, "to continue it"),
            Hint("overwrite", True, "to start again"),
        )


class OutputSpaceError(EMSRError, OSError):
    """No room to write the output: a full disk or quota, or a file-size limit (``ulimit -f``).

    Nothing is left under the output's name and an OME-TIFF's temporary file is removed; an
    OME-Zarr's finished slices are kept in its partial store (``kept``; the hint is then to
    resume once there is room). ``needed`` is the output's size in bytes (an upper bound for a
    compressed OME-Zarr), ``free`` the space left on its file system (None where unknown);
    ``errno`` is the error's code (ENOSPC, EDQUOT or EFBIG).
    """

    def __init__(
        self, code: int, path: Path, *, needed: int | None, exact: bool, free: int | None,
        kept: Path | None = None, slices_kept: int = 0, detail: str = "",
    ) -> None:  # fmt: skip
        self.code, self.path, self.needed, self.exact, self.free = code, Path(path), needed, exact, free
        self.kept, self.slices_kept = kept, slices_kept
        self.reason = detail or os.strerror(code)
        if kept is not None:
            what = f"{self.problem()}; the {slices_kept} finished slice(s) are kept in {kept}"
            super().__init__(what, Hint("resume", True, "after making room"))
        else:
            super().__init__(
                f"{self.problem()}; nothing was left behind: make room, or write the output elsewhere, and run again"
            )
        self.errno = code

    def problem(self) -> str:
        """Say what happened and how much was needed, without advice."""
        if self.code == errno.EFBIG:
            what = f"the file-size limit of this process (ulimit -f) was reached while writing {self.path}"
        elif self.code == getattr(errno, "EDQUOT", None):
            what = f"the disk quota is full: writing {self.path} failed"
        else:
            what = f"the disk is full: writing {self.path} failed"
        what += f" ({self.reason})"
        if self.needed is not None:
            what += f"; the output needs {'' if self.exact else 'up to '}{human_bytes(self.needed)}"
            if self.free is not None:
                what += f", {human_bytes(self.free)} free on its disk"
        elif self.free is not None:
            what += f"; {human_bytes(self.free)} free on its disk"
        return what


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _free_bytes(folder: Path) -> int | None:
    try:
        return int(shutil.disk_usage(folder).free)
    except OSError:
        return None


def _short_write_errno(exc: OSError) -> int | None:
    """Return the likely errno of a short write reported without one: EFBIG or ENOSPC.

    numpy's ``tofile`` reports "N requested and M written"; under a file-size limit that is EFBIG,
    else a full disk (ENOSPC).
    """
    text = str(exc)
    if not ("requested and" in text and "written" in text):
        return None
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY:
            return errno.EFBIG
    except (ImportError, OSError, ValueError):
        pass
    return errno.ENOSPC


def space_error(exc: BaseException, writer: Any) -> OutputSpaceError | None:
    """Return an :class:`OutputSpaceError` for ``exc`` if it means "no room" while writing, else None.

    Call it after ``writer.abort()`` (so that the free space counts what abort released).
    """
    if not isinstance(exc, OSError) or isinstance(exc, OutputSpaceError):
        return None
    code = exc.errno if exc.errno is not None else _short_write_errno(exc)
    path = getattr(writer, "path", None)
    if code not in SPACE_ERRNOS or path is None:
        return None
    needed, exact = writer.estimated_bytes() if hasattr(writer, "estimated_bytes") else (None, False)
    kept, slices = writer.kept() if hasattr(writer, "kept") else (None, 0)
    detail = exc.strerror or os.strerror(code)
    return OutputSpaceError(
        code, path, needed=needed, exact=exact, free=_free_bytes(path.parent), kept=kept, slices_kept=slices,
        detail=detail,
    )  # fmt: skip


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
        raise OutputExistsError(f"{path} exists", Hint("overwrite", True, "to replace it"))
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
        for stale in remove_stale_temporaries(self.path):  # left by runs killed outright (SIGKILL, a crash)
            warnings.warn(
                f"removed {stale.name}, the temporary file of an earlier run for {self.path.name} that was killed "
                "(its process no longer exists)",
                stacklevel=3,
            )
        self._tmp = temporary_sibling(self.path)
        self._tif = tifffile.TiffWriter(self._tmp, bigtiff=nbytes > _BIGTIFF_ABOVE - 2**26, ome=False)
        return np.zeros(self.shape[0] if len(self.shape) == 3 else 1, dtype=bool)

    def estimated_bytes(self) -> tuple[int, bool]:
        """(bytes the finished file takes, whether that is exact rather than an upper bound)."""
        pages = self.shape[0] if len(self.shape) == 3 else 1
        return int(np.prod(self.shape)) * self.dtype.itemsize + 4096 + 256 * pages, True

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
        height, width = self.shape[-2:]
        omexml.addimage(self.dtype, self.shape, (pages, 1, 1, height, width, 1), **meta)
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
        tif, tmp, self._tif = self._tif, self._tmp, None
        if tif is None or tmp is None:
            raise RuntimeError(f"{self.path}: the writer is already closed")
        tif.close()  # may fail (a full disk): the caller's abort() then removes the temporary file
        _check_target(self.path, self.overwrite)
        _replace(tmp, self.path)
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Delete the temporary file and close it; nothing is left behind, whatever went wrong.

        The file is unlinked first (POSIX allows it while open), so that an interruption during the
        close cannot leave it; closing a file whose disk is full can fail again, which is ignored.
        """
        tmp, tif = self._tmp, self._tif
        self._tmp = self._tif = None
        try:
            if tmp is not None:
                try:
                    remove_path(tmp)
                except OSError:  # e.g. Windows cannot unlink an open file: close first, then unlink
                    pass
        finally:
            if tif is not None:
                try:
                    tif.close()
                except Exception:  # noqa: BLE001  (a full disk fails the final flush; the file is gone anyway)
                    pass
            if tmp is not None:
                remove_path(tmp)


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
    for i, (name, size) in enumerate(zip(names, sizes, strict=False)):
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


def ngff_multiscale(
    name: str,
    ndim: int,
    pixel_size_nm: Sequence[float | None] | None,
    *,
    scale: int = 1,
    offset: Sequence[int] | None = None,
    translate: Sequence[float] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the NGFF 0.4 multiscale entry of a one-level image (the ``multiscales`` item of an OME-Zarr).

    Parameters
    ----------
    name : str
        The image's name.
    ndim : int
        2 (y, x) or 3 (z, y, x).
    pixel_size_nm : sequence of (float or None), optional
        The *source's* pixel size per axis (None: unknown, written as 1 without a unit).
    scale : int
        Up-sampling of y and x from the source to this image (1: the image itself, e.g. a layer).
    offset : (int, int), optional
        Source pixels (y, x) where the image starts (a region of interest); see :func:`ngff_transforms`.
    translate : sequence of float, optional
        A further shift per axis in physical units (e.g. a napari layer's ``translate``).
    metadata : dict, optional
        Stored as the entry's ``metadata``.
    """
    axes, transforms = ngff_transforms(pixel_size_nm, ndim, scale=scale, offset=offset)
    shift = list(transforms[1]["translation"])
    if translate is not None:
        shift = [a + float(b) for a, b in zip(shift, ([0.0] * ndim + list(translate))[-ndim:], strict=True)]
    kept: list[dict[str, Any]] = [transforms[0]]
    if any(shift):  # a zero translation is NGFF's default: left out
        kept.append({"type": "translation", "translation": shift})
    entry: dict[str, Any] = {
        "version": "0.4",
        "name": name,
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": kept}],
    }
    if metadata is not None:
        entry["metadata"] = dict(metadata)
    return entry


#: a pyramid level is added while the previous one is larger than this in y or x (pixels)
PYRAMID_SMALL = 512


def pyramid_shapes(shape: Sequence[int], small: int = PYRAMID_SMALL) -> list[tuple[int, ...]]:
    """Return the shapes of an image's pyramid levels: level 0 is ``shape``; each next one halves y and x.

    Levels are added (y and x rounded up) while the previous level is larger than ``small`` pixels
    in y or x; z is kept (EM stacks are browsed slice by slice, and each slice's levels can then be
    written with the slice, in any order).
    """
    levels = [tuple(int(n) for n in shape)]
    while max(levels[-1][-2:]) > small:
        last = levels[-1]
        levels.append((*last[:-2], *(-(-n // 2) for n in last[-2:])))
    return levels


def halve(plane: np.ndarray) -> np.ndarray:
    """Return ``plane`` (y, x) down-sampled by 2: the mean of each 2 x 2 block, in the plane's dtype.

    An odd last row or column is averaged with a copy of itself (edge replication), so borders are
    not darkened; integer planes are rounded to the nearest value.
    """
    plane = np.asarray(plane)
    h, w = plane.shape
    padded = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.float32)
    mean = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).mean(axis=(1, 3))
    if np.issubdtype(plane.dtype, np.integer):
        info = np.iinfo(plane.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(plane.dtype)
    return mean.astype(plane.dtype)


def with_pyramid(multiscale: dict[str, Any], shape: Sequence[int], small: int = PYRAMID_SMALL) -> dict[str, Any]:
    """Return a copy of a one-level NGFF multiscale entry with the datasets of ``shape``'s pyramid.

    Level ``l`` (path ``"l"``) has ``2**l`` times the y / x scale of level 0 and a translation that
    puts its pixel centres at the centres of the 2**l x 2**l blocks of level-0 pixels it averages.
    """
    entry = json.loads(json.dumps(multiscale))
    first = entry["datasets"][0]["coordinateTransformations"]
    scale0 = list(first[0]["scale"])
    shift0 = list(first[1]["translation"]) if len(first) > 1 else [0.0] * len(scale0)
    datasets = [entry["datasets"][0]]
    for level in range(1, len(pyramid_shapes(shape, small))):
        f = 2**level
        scale = [v * f if i >= len(scale0) - 2 else v for i, v in enumerate(scale0)]  # y and x only
        in_plane = range(len(scale0) - 2, len(scale0))
        pairs = enumerate(zip(shift0, scale0, strict=True))
        shift = [t + (f - 1) / 2 * v if i in in_plane else t for i, (t, v) in pairs]
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": scale}, {"type": "translation", "translation": shift}]})  # fmt: skip
    entry["datasets"] = datasets
    entry.setdefault("type", "mean")
    return entry


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
        pyramid: bool = True,
    ) -> None:
        self.path, self.partial = Path(path), partial_path(path)
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self.levels = pyramid_shapes(self.shape) if pyramid else [self.shape]
        self.multiscale = with_pyramid(multiscale, self.shape) if len(self.levels) > 1 else multiscale
        # a store resumed must have the same levels: they are part of what it was started with
        self.fingerprint = {**json.loads(json.dumps(fingerprint)), "pyramid_levels": len(self.levels)}
        self.overwrite, self.resume, self.chunk = overwrite, resume, int(chunk)
        self.already_complete = False
        self._created = False  # this writer made the partial store (it was not resumed)
        self._check()

    def _check(self) -> None:
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path.parent} does not exist; create the output folder first")
        if self.resume and not self.partial.exists() and self.path.exists():
            if self._stored_state(self.path).get("complete") and self._matches(self.path):
                self.already_complete = True
                return
        if self.path.exists() and not self.overwrite:
            raise OutputExistsError(f"{self.path} exists", Hint("overwrite", True, "to replace it"))
        if self.partial.exists() and not (self.resume or self.overwrite):
            raise PartialOutputExists(self.partial)
        if self.partial.exists() and self.resume:
            self._matches(self.partial, strict=True)

    @staticmethod
    def _stored_state(store: Path) -> dict[str, Any]:
        import zarr

        try:
            state = zarr.open_group(str(store), mode="r").attrs.get(_ATTR)
            return dict(state) if isinstance(state, dict) else {}
        except Exception:
            return {}

    def _matches(self, store: Path, strict: bool = False) -> bool:
        stored = self._stored_state(store).get("fingerprint")
        if stored == self.fingerprint:
            return True
        if not strict:
            return False
        if not isinstance(stored, dict):
            raise ResumeError(f"cannot resume {store}: it is not a napari-emsr partial result", partial=store)
        keys = sorted(k for k in set(stored) | set(self.fingerprint) if stored.get(k) != self.fingerprint.get(k))
        content = "input_content"
        if content in keys and not {"input", "input_shape", "input_dtype"} & set(keys):
            was, now = _content_detail(stored.get(content)), _content_detail(self.fingerprint.get(content))
            raise ResumeError(
                f"cannot resume {store}: the input {self.fingerprint.get('input', '')} has changed since this "
                f"partial result was started (same shape and type, other content: {was} -> {now}), so its "
                "finished slices come from another input",
                partial=store,
            )
        keys = [k for k in keys if k != content] or keys
        detail = "; ".join(f"{k}: was {stored.get(k)!r}, now {self.fingerprint.get(k)!r}" for k in keys[:4])
        raise ResumeError(
            f"cannot resume {store}: it was started with other settings ({detail}); to continue it rerun with the "
            "same input, model and options",
            partial=store,
        )

    def open(self) -> np.ndarray:
        """Create (or reopen, when resuming) the partial store; returns the done mask per slice."""
        if self.already_complete:
            return np.ones(self.shape[0] if len(self.shape) == 3 else 1, dtype=bool)
        if self.partial.exists() and self.resume:
            return read_done(self.partial)
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self._created = True
        try:
            return self._create()
        except BaseException:  # e.g. a full disk: a half-made store could not be resumed
            remove_path(self.partial)
            raise

    def _create(self) -> np.ndarray:
        import zarr

        group = zarr.open_group(str(self.partial), mode="w", zarr_format=2)
        for level, shape in enumerate(self.levels):
            tile = tuple(min(n, self.chunk) for n in shape[-2:])
            group.create_array(
                str(level),
                shape=shape,
                chunks=(1, *tile) if len(shape) == 3 else tile,
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
        done = read_done(self.partial)
        if not done.all():
            raise RuntimeError(f"{self.partial}: {int((~done).sum())} slices are not done; cannot finish it")
        group.attrs[_ATTR] = {"complete": True, "fingerprint": self.fingerprint}
        _remove_stray_temporaries(self.partial)
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} appeared while writing; the result is kept at {self.partial}")
        _replace(self.partial, self.path)
        return self.path

    def estimated_bytes(self) -> tuple[int, bool]:
        """Return (an upper bound of the store's size: the uncompressed data of every level, False: not exact)."""
        return sum(int(np.prod(shape)) for shape in self.levels) * self.dtype.itemsize + 4096, False

    def kept(self) -> tuple[Path | None, int]:
        """Return (the partial store, if there is one, and how many of its slices are done)."""
        if self.already_complete or not self.partial.is_dir():
            return None, 0
        try:
            return self.partial, int(read_done(self.partial).sum())
        except Exception:  # noqa: BLE001  (a store damaged beyond its done flags: nothing to count)
            return self.partial, 0

    def abort(self) -> None:
        """Keep the partial store: its finished slices are reused by ``resume=True``.

        A store this writer created and in which no slice is finished is removed (nothing to
        resume), so that a plain rerun is not refused.
        """
        if self._created and self.partial.is_dir() and not self.kept()[1]:
            remove_path(self.partial)


_ZARR_TEMPORARY = re.compile(r".+\.[0-9a-f]{32}\.partial")


def _remove_stray_temporaries(store: Path) -> None:
    """Remove the temporary files zarr writes chunks to, left by writes that were interrupted.

    zarr writes each chunk to ``NAME.<uuid>.partial`` and renames it; a process killed (or
    interrupted by Ctrl-C) in between leaves that file, which must not end up in the output.
    """
    for folder, _, names in os.walk(store):
        for name in names:
            if _ZARR_TEMPORARY.fullmatch(name):
                remove_path(Path(folder) / name)


def _content_detail(content: Any) -> str:
    if not isinstance(content, dict):
        return "not recorded"
    return f"sha256 {str(content.get('sha256', ''))[:12]} of slices {content.get('slices')}"


def read_done(store: str | os.PathLike) -> np.ndarray:
    """Return the per-slice done flags of a partial store; a flag whose chunk cannot be read is False.

    A run stopped by a full disk can leave a truncated flag: that slice is simply done again.
    """
    import zarr

    done = zarr.open_group(str(store), mode="r")[_DONE]
    assert isinstance(done, zarr.Array)
    try:
        return np.asarray(done[:], dtype=bool)
    except Exception:  # noqa: BLE001  (a damaged chunk; read the others one by one)
        flags = np.zeros(done.shape, dtype=bool)
        for i in range(done.shape[0]):
            try:
                flags[i] = bool(done[i])
            except Exception:  # noqa: BLE001
                flags[i] = False
        return flags


def write_zarr_slice(store: str | os.PathLike, index: int | None, plane: np.ndarray) -> None:
    """Write one output slice (and its pyramid levels) into a partial OME-Zarr store and mark it done.

    A plain function of a path, so that independent processes (dask workers) can each write their
    own slices; each slice is a separate set of chunks in every level, the levels are written
    before level 0 and the done flag last, so a slice marked done has all its levels.
    """
    import zarr

    group = zarr.open_group(str(store), mode="r+")
    done = group[_DONE]
    entries: Any = group.attrs.get("multiscales") or [{}]
    paths = [str(d["path"]) for d in entries[0].get("datasets") or [{"path": "0"}]]
    levels = [group[path] for path in paths]
    assert isinstance(done, zarr.Array)
    arrays = [a for a in levels if isinstance(a, zarr.Array)]
    assert len(arrays) == len(levels)  # each level is an array
    planes = [np.asarray(plane)]
    for _ in levels[1:]:
        planes.append(halve(planes[-1]))
    for array, image in reversed(list(zip(arrays, planes, strict=True))):
        if index is None:
            array[...] = image
        else:
            array[index] = image
    done[0 if index is None else index] = True


def open_writer(path: str | os.PathLike, **options: Any) -> OmeTiffWriter | OmeZarrWriter:
    """Return the writer for ``path``'s kind (OME-TIFF ignores multiscale, fingerprint, resume and pyramid)."""
    kind = output_kind(path)
    if kind == "ome-tiff":
        if options.get("resume"):
            raise ValueError(f"{path}: only OME-Zarr outputs can be resumed; write to a .ome.zarr to be able to resume")
        keep = {k: options[k] for k in ("shape", "dtype", "pixel_size_nm", "overwrite") if k in options}
        return OmeTiffWriter(path, **keep)
    names = ("shape", "dtype", "multiscale", "fingerprint", "overwrite", "resume", "chunk", "pyramid")
    keep = {k: options[k] for k in names if k in options}
    return OmeZarrWriter(path, **keep)
