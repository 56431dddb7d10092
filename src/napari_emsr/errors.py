"""Errors that say what to do, in the terms of whoever reads them.

A library error names what went wrong (``detail``) and what would fix it as structured
:class:`Hint` objects: an option of the library call (``overwrite=True``, ``pixel_size=...``) and
what it does. The library itself never names a command-line flag or a button; each front end
phrases the hints its own way:

- Python: ``str(error)`` says ``pass overwrite=True to replace it``;
- the CLI (:func:`napari_emsr.cli.main`) says ``use --overwrite to replace it``;
- napari (:class:`~napari_emsr._napari.common.run_panel.RunPanel`) says
  ``tick "Replace an existing output" to replace it``.

The concrete classes also derive from the built-in exception a caller would catch
(:class:`FileExistsError`, :class:`ValueError`, :class:`MemoryError`), so existing ``except``
clauses keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = [
    "Hint",
    "EMSRError",
    "OutputExistsError",
    "PartialOutputError",
    "HintedValueError",
    "HintedMemoryError",
    "phrase",
    "phrase_with",
    "python_option",
]


@dataclass(frozen=True)
class Hint:
    """One way out of an error: set the library option ``option`` to ``value``, ``purpose``.

    Attributes
    ----------
    option : str
        The keyword of the library call (``"overwrite"``, ``"resume"``, ``"pixel_size"``, ``"device"``, ...).
    value : object
        The value to give it: ``True`` for a switch, a concrete value (``"cpu"``), or a placeholder
        string in capitals (``"NM"``) when the user has to choose it.
    purpose : str
        What it achieves, as the end of a sentence (``"to replace it"``); may be empty.
    """

    option: str
    value: Any = True
    purpose: str = ""


def python_option(hint: Hint) -> str:
    """Phrase ``hint`` for a Python caller: ``pass overwrite=True``."""
    value = hint.value if isinstance(hint.value, str) and hint.value.isupper() else repr(hint.value)
    return f"pass {hint.option}={value}"


def phrase(detail: str, hints: tuple[Hint, ...], option: Callable[[Hint], str] = python_option) -> str:
    """Join ``detail`` and the ``hints`` into one sentence, each hint phrased by ``option``."""
    if not hints:
        return detail
    ways = [" ".join(part for part in (option(h), h.purpose) if part) for h in hints]
    return f"{detail}: {', or '.join(ways)}"


class EMSRError(Exception):
    """An error with a ``detail`` and :class:`Hint` objects that each front end phrases.

    ``str(error)`` phrases the hints for a Python caller; :meth:`phrased` for another front end.
    """

    def __init__(self, detail: str, *hints: Hint) -> None:
        self.detail = detail
        self.hints = tuple(hints)
        super().__init__(phrase(detail, self.hints))

    def phrased(self, option: Callable[[Hint], str]) -> str:
        """Return the message with the hints phrased by ``option`` (a function of one :class:`Hint`)."""
        return phrase(self.detail, self.hints, option)


class OutputExistsError(EMSRError, FileExistsError):
    """The output (or a file a run would write) exists and is not to be replaced silently."""


class PartialOutputError(EMSRError, FileExistsError):
    """The partial result of an interrupted run is in the way: resume it or start again."""


class HintedValueError(EMSRError, ValueError):
    """A value (an input, an option) that cannot work, with what to change."""


class HintedMemoryError(EMSRError, MemoryError):
    """Out of memory, with what to change."""


def phrase_with(names: Mapping[str, Callable[[Hint], str]], fallback: Callable[[Hint], str]) -> Callable[[Hint], str]:
    """Return a hint phraser that uses ``names[hint.option]`` when present, else ``fallback``."""

    def option(hint: Hint) -> str:
        return names[hint.option](hint) if hint.option in names else fallback(hint)

    return option
