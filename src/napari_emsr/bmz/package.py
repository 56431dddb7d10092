"""Read a bioimage.io model package exported by napari-emsr, without pickle and without bioimageio.spec.

The package's ``rdf.yaml`` (parsed with ``yaml.safe_load``: data only) names, under
``config.napari_emsr.safetensors``, the napari-emsr model file attached to the package; that file
is checked against the sha256 the package records for it (always: a package that records none is
refused, so that removing the hash cannot switch the check off) and loaded like any model file. The
``pytorch_state_dict`` weights (``weights.pt``, a pickle container) are never read: a package that
has only pickle-based weights is refused.

This module reads the package; :func:`napari_emsr.model_io.load_package` (what
:func:`napari_emsr.load_model` does with a .zip) loads the network from the attached file.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from napari_emsr.model_file import ModelFileError

__all__ = ["is_zip", "read_packaged_model", "check_architecture", "read_package_rdf"]

_RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
_MAX_RDF = 16 * 2**20
_PICKLED = {"pytorch_state_dict", "torchscript"}


def is_zip(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a zip archive (a local file header or an empty zip)."""
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def read_package_rdf(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """Return the package's resource description (rdf.yaml) as plain data; errors name what is wrong."""
    import yaml

    names = archive.namelist()
    rdf_name = next((n for n in names if n in _RDF_NAMES or n.endswith(".bioimageio.yaml")), None)
    if rdf_name is None:
        if any(n.endswith("data.pkl") for n in names):
            raise ModelFileError(
                path,
                "this is a PyTorch checkpoint (.pt/.pth: a pickle in a zip), not a napari-emsr model; napari-emsr "
                "never unpickles model files. Save the weights as safetensors with napari_emsr.save_model",
            )
        raise ModelFileError(path, "a zip archive, but not a bioimage.io model package (it has no rdf.yaml)")
    if archive.getinfo(rdf_name).file_size > _MAX_RDF:
        raise ModelFileError(path, f"{rdf_name} is too large to be a resource description")
    try:
        rdf = yaml.safe_load(archive.read(rdf_name))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelFileError(path, f"{rdf_name} is not valid YAML ({exc})") from None
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ModelFileError(path, f"a bioimage.io package, but its {rdf_name} does not describe a model")
    return rdf


def _our_member(rdf: dict[str, Any], path: Path) -> str:
    ours = rdf.get("config", {}).get("napari_emsr") if isinstance(rdf.get("config"), dict) else None
    member = ours.get("safetensors") if isinstance(ours, dict) else None
    if isinstance(member, str) and member:
        return member
    formats = sorted((rdf.get("weights") or {}).keys()) if isinstance(rdf.get("weights"), dict) else []
    if formats and set(formats) <= _PICKLED:
        raise ModelFileError(
            path,
            f"a bioimage.io model package whose only weights are {', '.join(formats)} (pickle-based PyTorch "
            "files) and no napari-emsr safetensors file: napari-emsr never unpickles model files. Export "
            "packages with `emsr export-bioimageio`, which attaches the safetensors model file",
        )
    raise ModelFileError(
        path,
        "a bioimage.io model package, but not one exported by napari-emsr (no config.napari_emsr.safetensors "
        f"entry; weights: {', '.join(formats) or 'none'})",
    )


def _recorded_sha256(rdf: dict[str, Any], member: str, path: Path) -> str:
    """Return the sha256 the package records for its model file ``member``; refused when there is none."""
    attachments = rdf.get("attachments")
    entries = [
        entry
        for entry in (attachments if isinstance(attachments, list) else [])
        if isinstance(entry, dict) and str(entry.get("source", "")).replace("\\", "/").rsplit("/", 1)[-1] == member
    ]
    hashes = {entry.get("sha256") for entry in entries}
    hashes.discard(None)
    if not hashes:
        raise ModelFileError(
            path,
            f"the package records no sha256 for {member}, its napari-emsr model file (no attachments entry with a "
            "sha256), so its integrity cannot be checked; packages written by `emsr export-bioimageio` record it. "
            "Export the package again from the model file",
        )
    if len(hashes) > 1:
        raise ModelFileError(path, f"the package records different sha256 values for {member}")
    recorded = hashes.pop()
    return recorded.lower() if isinstance(recorded, str) else str(recorded)


def read_packaged_model(path: str | os.PathLike) -> tuple[str, bytes, dict[str, Any]]:
    """Return the napari-emsr model file attached to a package (.zip), checked against its recorded sha256.

    Returns ``(member, data, rdf)``: the attachment's name in the archive, its bytes and the
    package's resource description. :func:`napari_emsr.load_model` loads the network from it.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(
            path,
            f"a corrupt or truncated zip archive ({exc}); napari-emsr reads model files (.safetensors) and "
            "bioimage.io packages made by `emsr export-bioimageio`, and never unpickles model files",
        ) from None
    with archive:
        rdf = read_package_rdf(archive, path)
        member = _our_member(rdf, path)
        if member not in archive.namelist():
            raise ModelFileError(
                path, f"the package names {member} as its napari-emsr model file but does not contain it"
            )
        try:
            data = archive.read(member)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:  # CRC errors, truncation
            raise ModelFileError(path, f"{member} inside the package is corrupt ({exc})") from None
    recorded = _recorded_sha256(rdf, member, path)
    if not re.fullmatch(r"[0-9a-f]{64}", recorded) or hashlib.sha256(data).hexdigest() != recorded:
        raise ModelFileError(
            path, f"{member} inside the package does not match the sha256 the package records (corrupt or altered)"
        )
    return member, data, rdf


def check_architecture(rdf: dict[str, Any], model: Any, path: str | os.PathLike) -> None:
    """Return the package's declared architecture must be the attached model's config."""
    try:
        kwargs = rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]
    except (KeyError, TypeError):
        return
    if isinstance(kwargs, dict) and kwargs != model.config.to_dict():
        raise ModelFileError(
            path, "the package's architecture (weights.pytorch_state_dict) disagrees with its model file"
        )
