"""The ``emsr`` command: argparse subcommands, each a thin adapter over the public API.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``;
register it in ``SUBCOMMANDS``. Errors a user can fix (bad files, bad values) end the command with
one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import re
import sys
from typing import Sequence

__all__ = ["main", "build_parser", "CLIError", "SUBCOMMANDS"]

#: subcommand name -> module (in this package) providing add_parser() and run()
SUBCOMMANDS = {
    "info": "napari_emsr.cli.info",
    "predict": "napari_emsr.cli.predict",
    "evaluate": "napari_emsr.cli.evaluate",
    "train": "napari_emsr.cli.train",
    "finetune": "napari_emsr.cli.finetune",
    "isotropic": "napari_emsr.cli.isotropic",
    "export-bioimageio": "napari_emsr.cli.export_bioimageio",
}


class CLIError(Exception):
    """A problem with the command's input, reported as one line (exit status 2)."""


#: options whose value is a comma-separated list of numbers, which may start with a minus sign
NUMBER_LIST_OPTIONS = frozenset({"--lambdas", "--offset"})
_NEGATIVE_LIST = re.compile(r"-(\d|\.\d)[\d.eE+\-]*(,[^,]*)*")


def _attach_negative_values(argv: list[str]) -> list[str]:
    """Rewrite ``--lambdas -1,0,0`` as ``--lambdas=-1,0,0``.

    argparse takes a value that starts with '-' and is not a plain number for an option, so the
    value's own type check would never see it.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--":
            return out + argv[i:]
        if argv[i] in NUMBER_LIST_OPTIONS and i + 1 < len(argv) and _NEGATIVE_LIST.fullmatch(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _os_error(exc: OSError) -> str:
    """One line for an operating-system error, naming the file where it is known."""
    from napari_emsr.cli._progress import cli_message
    from napari_emsr.errors import EMSRError

    if isinstance(exc, EMSRError):  # the library's own, with hints: phrase them for the command line
        return cli_message(exc)
    where = f"{exc.filename}: " if getattr(exc, "filename", None) and str(exc.filename) not in str(exc) else ""
    if exc.errno == errno.ENOSPC and "disk is full" not in str(exc):
        return f"{where}the disk is full (no space left on the device): {exc}"
    return f"{where}{exc}"


def build_parser() -> argparse.ArgumentParser:
    """Build the ``emsr`` argument parser with all its subcommands."""
    from napari_emsr import __version__

    parser = argparse.ArgumentParser(
        prog="emsr",
        description="EMSR super-resolution of electron-microscopy volumes (no clean reference needed).",
    )
    parser.add_argument("--version", action="version", version=f"napari-emsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``emsr``; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_attach_negative_values(argv))
    args.argv = argv
    module = importlib.import_module(SUBCOMMANDS[args.command])
    from napari_emsr.cli._progress import cli_message
    from napari_emsr.config import ConfigError
    from napari_emsr.model_io import ModelFileError

    try:
        return int(module.run(args) or 0)
    except MemoryError as exc:
        print(f"emsr {args.command}: error: {cli_message(exc)}", file=sys.stderr)
        return 1
    except (CLIError, ConfigError, ModelFileError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"emsr {args.command}: error: {cli_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder without write permission, ...
        print(f"emsr {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"emsr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
