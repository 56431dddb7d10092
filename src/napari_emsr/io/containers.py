"""Images inside container files (HDF5, N5, Zarr groups): naming one, or finding the only one.

A dataset is named after the container's path and a colon: ``sample.h5:/volumes/raw`` (the
leading ``/`` is optional), or with ``open_volume(..., dataset="volumes/raw")``. Without a name,
the container must hold exactly one image: a numeric dataset with two or three axes longer than
one, the last two (y, x) of at least :data:`MIN_SIDE` pixels (so tables such as CREMI's
``annotations/locations``, shape (n, 3), do not count). The full-resolution level ``s0`` of a
pyramid (``s0``, ``s1``, ... side by side, as N5 Viewer and BigDataViewer write them) stands for
its pyramid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from napari_emsr.io.volume import VolumeError

__all__ = [
    "Candidate",
    "AmbiguousDatasetError",
    "MIN_SIDE",
    "split_dataset",
    "join_dataset",
    "normalise_dataset",
    "looks_like_image",
    "choose_dataset",
    "pyramid_level",
    "is_next_level",
    "read_chunks",
]

#: the smallest y and x extent of a dataset found without being named
MIN_SIDE = 8
#: the suffixes after which a ``:`` starts the name of a dataset
_CONTAINER = re.compile(r"\.(?:h5|hdf5|hdf|he5|n5|zarr):", re.IGNORECASE)
_LEVEL = re.compile(r"^s(\d+)$")


@dataclass(frozen=True)
class Candidate:
    """One image dataset inside a container: its path (no leading ``/``), shape (numpy order), dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def describe(self) -> str:
        """``volumes/raw (125, 1250, 1250) uint8``."""
        return f"{self.name} {self.shape} {self.dtype}"


class AmbiguousDatasetError(VolumeError):
    """A container holds several images and none was named; ``candidates`` lists them."""

    def __init__(self, path: Any, candidates: Sequence[Candidate]) -> None:
        self.candidates = tuple(candidates)
        shown = ", ".join(c.describe() for c in self.candidates[:8])
        more = f" and {len(self.candidates) - 8} more" if len(self.candidates) > 8 else ""
        example = join_dataset(path, self.candidates[0].name)
        super().__init__(
            path,
            f"holds {len(self.candidates)} images ({shown}{more}); choose one by adding its name to the path "
            f"after a colon, e.g. '{example}'",
        )


def split_dataset(raw: str) -> tuple[str, str | None]:
    """Split ``"sample.h5:/volumes/raw"`` into ``("sample.h5", "volumes/raw")``.

    An existing path is never split; otherwise the first ``.h5`` / ``.hdf5`` / ``.hdf`` / ``.he5``
    / ``.n5`` / ``.zarr`` followed by ``:`` whose part before the colon exists ends the file (or,
    if none exists, the first one: the error then names the missing file). Other paths come back
    unchanged with None.
    """
    if Path(raw).exists():
        return raw, None
    matches = list(_CONTAINER.finditer(raw))
    for match in matches:
        if Path(raw[: match.end() - 1]).exists():
            return raw[: match.end() - 1], normalise_dataset(raw[match.end() :])
    if matches:
        return raw[: matches[0].end() - 1], normalise_dataset(raw[matches[0].end() :])
    return raw, None


def normalise_dataset(name: str | None) -> str | None:
    """``"/volumes/raw/"`` -> ``"volumes/raw"``; an empty name (the root) -> None."""
    if name is None:
        return None
    parts = [p for p in str(name).replace("\\", "/").split("/") if p and p != "."]
    return "/".join(parts) or None


def join_dataset(path: Any, name: str) -> str:
    """``sample.h5:/volumes/raw``: the path that opens dataset ``name`` of the container ``path``."""
    return f"{path}:/{name}"


def looks_like_image(shape: Sequence[int], dtype: Any) -> bool:
    """Whether a dataset of this shape and dtype is an image napari-emsr could open (see module doc)."""
    kind = np.dtype(dtype).kind if _is_dtype(dtype) else "O"
    sides = [int(n) for n in shape if int(n) != 1]
    return kind in "iuf" and len(sides) in (2, 3) and min(sides[-2:]) >= MIN_SIDE


def _is_dtype(dtype: Any) -> bool:
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return True


def pyramid_level(name: str) -> int | None:
    """Return the level of a pyramid dataset named ``.../s<k>`` (``s0`` is full resolution), else None."""
    match = _LEVEL.match(name.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def is_next_level(shape: Sequence[int], than: Sequence[int]) -> bool:
    """Whether ``shape`` can follow ``than`` in a pyramid: as many axes, nowhere larger, somewhere smaller."""
    shape, than = tuple(shape), tuple(than)
    return len(shape) == len(than) and shape != than and all(a <= b for a, b in zip(shape, than, strict=True))


def _parent(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


def choose_dataset(candidates: Sequence[Candidate], path: Any, *, found: Sequence[str] = ()) -> Candidate:
    """Return the only image among ``candidates`` (a pyramid counts as its ``s0``).

    Raises
    ------
    AmbiguousDatasetError
        If there are several, listing them and how to choose one.
    VolumeError
        If there is none; ``found`` (names of the container's other datasets) are listed.
    """
    full = {(_parent(c.name), pyramid_level(c.name)) for c in candidates}
    kept = [
        c for c in candidates if not (pyramid_level(c.name) or 0) or (_parent(c.name), 0) not in full
    ]  # lower levels of a pyramid whose s0 is here are not candidates of their own
    if len(kept) == 1:
        return kept[0]
    if kept:
        raise AmbiguousDatasetError(path, kept)
    others = ", ".join(list(found)[:8]) or "none"
    raise VolumeError(
        path,
        f"holds no 2D or 3D image (a numeric dataset with y and x of at least {MIN_SIDE} pixels); its datasets: "
        f"{others}",
    )


def read_chunks(
    shape: Sequence[int], storage: Sequence[int] | None, itemsize: int, *, target: int = 32 * 2**20
) -> tuple[int, ...]:
    """Dask chunks for reading a stored array: whole storage chunks, grown up to ``target`` bytes.

    Without storage chunks (a contiguous HDF5 dataset) a chunk is one slice. Chunks grow by
    doubling, x first, then y, then the axes before, so that a slice is read in few tasks and a
    volume of small storage chunks does not make millions of them; they stay multiples of the
    storage chunks (a storage chunk is never read twice for one dask chunk).
    """
    shape = [int(n) for n in shape]
    chunks = list(storage) if storage else [1] * (len(shape) - 2) + shape[-2:]
    chunks = [max(1, min(int(c), n)) if n else 1 for c, n in zip(chunks, shape, strict=True)]
    for axis in reversed(range(len(shape))):
        while chunks[axis] < shape[axis] and 2 * math.prod(chunks) * itemsize <= target:
            chunks[axis] = min(2 * chunks[axis], shape[axis])
    return tuple(chunks)
