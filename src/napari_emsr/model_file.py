"""The model-file format's header: reading and checking it without torch or the weights.

A napari-emsr model file is a safetensors file whose header's string metadata holds ``format``
(:data:`FORMAT_NAME`), ``format_version`` (:data:`FORMAT_VERSION`) and ``emsr`` (JSON: the network
config, the scale and the model's metadata); see :mod:`napari_emsr.model_io`, which writes and loads
whole models. This module only reads the header, so that listing the shipped models
(:mod:`napari_emsr.zoo`) or describing a file needs neither torch nor the weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from napari_emsr.errors import EMSRError, Hint

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "TRAIN_STATE_PREFIX", "SELF_CHECK_PREFIX", "ModelFileError", "read_model_header",
]  # fmt: skip

FORMAT_NAME = "napari-emsr-model"
FORMAT_VERSION = "1"
#: tensors under this prefix hold training state (optimizer, RNG); load_model skips them
TRAIN_STATE_PREFIX = "train_state."
#: tensors under this prefix are a fixed input and the network's output on it (see napari_emsr.model_io)
SELF_CHECK_PREFIX = "self_check."
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


class ModelFileError(EMSRError, ValueError):
    """A model file is missing, foreign, corrupt, truncated or does not match its own config.

    ``path`` is the file, ``problem`` what is wrong with it; ``hints`` (if any) what to give instead.
    """

    def __init__(self, path: str | os.PathLike, problem: str, *hints: Hint) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}", *hints)


def _sniff_foreign(path: Path, head: bytes) -> tuple[str, tuple[Hint, ...]] | None:
    """Return (what the file is, hints) for well-known files that are not safetensors."""
    if head[:2] == b"PK":
        return (
            "this is a zip archive (a PyTorch .pt/.pth checkpoint or a bioimage.io package), not a "
            "napari-emsr model file; napari-emsr never unpickles model files. Save the weights as "
            "safetensors with napari_emsr.save_model"
        ), ()
    if head[:1] == b"\x80":
        return "this is a Python pickle, not a napari-emsr model file; napari-emsr never unpickles model files", ()
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "this is an HDF5 file (e.g. a Keras model), not a napari-emsr model file", ()
    if head[:4] in (b"II*\x00", b"MM\x00*", b"\x89PNG"):
        what = "this is an image, not a model file; give the image as the input, and the model"
        return what, (Hint("model", "FILE"),)
    return None


def read_model_header(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and check a model file's header without loading its weights.

    Returns ``(tensors, emsr)``: the tensor table (name -> dtype, shape, offsets) and the parsed
    ``emsr`` metadata. Raises :class:`ModelFileError` with the file name and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(path, "no such file")
    if path.is_dir():
        raise ModelFileError(path, "is a folder, not a model file")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(9)
        if len(head) < 8:
            raise ModelFileError(path, f"file is empty or truncated ({size} bytes); it is not a model file")
        header_len = int.from_bytes(head[:8], "little")
        # A safetensors file: an 8-byte header length, then the JSON header. Only a file that is not
        # one is sniffed for other formats: a header length can start with the bytes of a pickle
        # (0x80) or a zip ("PK") by chance.
        if head[8:9] != b"{" or header_len > min(_MAX_HEADER, size - 8):
            foreign = _sniff_foreign(path, head)
            if foreign is not None:
                raise ModelFileError(path, foreign[0], *foreign[1])
        if header_len > min(_MAX_HEADER, size - 8):
            raise ModelFileError(path, "not a safetensors file (its first 8 bytes give no valid header length)")
        fh.seek(8)
        raw = fh.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(path, "not a safetensors file (its header is not valid JSON)") from None
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(
            path,
            "a safetensors file, but not a napari-emsr model (its metadata has no format "
            f"'{FORMAT_NAME}'); it probably comes from another tool",
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            path,
            f"model format version {meta.get('format_version')!r} is not supported by this napari-emsr "
            f"(it reads version {FORMAT_VERSION}); update napari-emsr",
        )
    _check_extent(path, header, size - 8 - header_len)
    try:
        emsr = json.loads(meta.get("emsr", ""))
        if not isinstance(emsr, dict):
            raise ValueError
    except ValueError:
        raise ModelFileError(path, "the 'emsr' metadata entry is missing or not valid JSON") from None
    return header, emsr


def _check_extent(path: Path, tensors: dict[str, Any], data_size: int) -> None:
    """Return the tensors must tile the data area exactly; otherwise the file is truncated or corrupt."""
    end = 0
    for name, entry in tensors.items():
        try:
            start, stop = entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ModelFileError(path, f"corrupt header: tensor {name!r} has no valid data offsets") from None
        end = max(end, int(stop))
    if end > data_size:
        raise ModelFileError(
            path, f"file is truncated: the header describes {end} bytes of weights but only {data_size} are present"
        )
