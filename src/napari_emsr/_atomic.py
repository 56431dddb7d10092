"""Atomic writes: work under a temporary name next to the target, rename into place on success.

A temporary's name encodes the target's name, this machine and the writing process
(``.NAME.<pid>-<host>-<id>.partial``), so that a later run can recognise the temporaries left by a
process that was killed outright (SIGKILL, a crash, a power cut) and remove them
(:func:`remove_stale_temporaries`), without touching those of a run that is still going.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from napari_emsr.errors import Hint, OutputExistsError

__all__ = ["atomic_path", "temporary_sibling", "remove_stale_temporaries", "remove_path", "SPACE_ERRNOS"]

#: errors that mean "no room to write": a full disk, a full quota, a file-size limit (ulimit -f)
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _host_key() -> str:
    """Return a short, file-name-safe key of this machine (temporaries on a shared file system)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def temporary_sibling(path: str | os.PathLike) -> Path:
    """Return a fresh hidden name in the target's folder (same file system, so the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{_host_key()}-{uuid.uuid4().hex[:8]}.partial")


def _pattern(name: str) -> re.Pattern:
    # current names carry the host; names without it (older versions) are taken as this machine's
    return re.compile(rf"\.{re.escape(name)}\.(\d+)-(?:([0-9a-f]{{6}})-)?[0-9a-f]{{8}}\.partial")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie, killed but not reaped, is dead)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def remove_path(path: Path) -> None:
    """Remove a file or a folder, if it exists; never raises for a missing one."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by dead processes of this machine; returns them.

    Only names made by :func:`temporary_sibling` for this very target are considered; those of
    running processes and of other machines are kept.
    """
    path = Path(path)
    pattern, host = _pattern(path.name), _host_key()
    removed: list[Path] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or (match.group(2) is not None and match.group(2) != host):
            continue
        if _alive(int(match.group(1))):
            continue
        remove_path(entry)
        removed.append(entry)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``, on error it is removed.

    Works for files and folders (e.g. a Zarr store). With ``overwrite=False`` an existing ``path``
    is an error raised before any work starts (:class:`napari_emsr.errors.OutputExistsError`).
    Temporaries of ``path`` left by killed processes
    are removed first.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists", Hint("overwrite", True, "to replace it"))
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} does not exist; create the folder first")
    remove_stale_temporaries(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        remove_path(tmp)
