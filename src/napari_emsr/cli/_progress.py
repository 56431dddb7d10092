"""The CLI's one progress adapter, and its phrasing of the library's error hints.

:func:`drive` runs any job's generator of :class:`napari_emsr.events.Event` to the end with one
tqdm bar (``done`` / ``total`` in the job's unit, the event's ``message`` beside it), writes
``"info"`` messages as lines that keep the bar intact, hands every event to the subcommand's own
``on_event`` (for what only it shows: a plan, a validation table), and closes the generator on the
way out (also on Ctrl-C), so that the job's clean-up runs before the command ends.

:func:`cli_message` phrases an :class:`napari_emsr.errors.EMSRError`'s hints as options of the
command line (``overwrite`` -> ``--overwrite``, ``pixel_size`` -> ``--pixel-size NM``).
"""

from __future__ import annotations

import sys
from typing import IO, Any, Callable, Iterator

from napari_emsr.errors import EMSRError, Hint
from napari_emsr.events import Event

__all__ = ["drive", "cli_option", "cli_message", "Writer"]

#: writes one line without breaking the progress bar
Writer = Callable[[str], None]

#: library options that the command line spells differently from ``--option-with-dashes``
CLI_SPELLING = {"free_space": "", "learning_rate": "--learning-rate"}


def cli_option(hint: Hint) -> str:
    """Phrase ``hint`` as a command-line option: ``use --overwrite``, ``give --pixel-size NM``."""
    if hint.option == "free_space":
        return "free some disk space"
    flag = CLI_SPELLING.get(hint.option) or "--" + hint.option.replace("_", "-")
    if hint.value is True:
        return f"use {flag}"
    return f"give {flag} {hint.value}"


def cli_message(error: BaseException) -> str:
    """Return ``error``'s message with its hints (if any) phrased as command-line options."""
    if isinstance(error, EMSRError):
        return error.phrased(cli_option)
    return str(error)


def drive(
    events: Iterator[Event],
    *,
    desc: str,
    on_event: Callable[[Event, Writer], None] | None = None,
    quiet: bool = False,
    file: IO[str] | None = None,
) -> tuple[Event | None, Event | None]:
    """Run ``events`` to the end with a progress bar; return the first and the last event.

    Parameters
    ----------
    events : iterator of Event
        The job's generator; closed on the way out, whatever happens.
    desc : str
        The bar's label (e.g. ``"emsr predict"``).
    on_event : callable, optional
        ``on_event(event, write)`` for every event, after the bar is updated; ``write(line)``
        prints a line without breaking the bar.
    quiet : bool
        No bar (lines are still written).
    file : file, optional
        Where the bar and the lines go (default: standard error). The bar is off when it is not a
        terminal.
    """
    from tqdm import tqdm

    out = sys.stderr if file is None else file
    bar: Any = None
    first = last = None

    def write(line: str) -> None:
        if bar is not None and not bar.disable:
            bar.write(line, file=out)
        else:
            print(line, file=out)

    try:
        for event in events:
            if bar is None:
                bar = tqdm(total=event.total, initial=event.done, unit=event.unit or "it", desc=desc, file=out,
                           dynamic_ncols=True, disable=True if quiet else None)  # fmt: skip
            first, last = first or event, event
            if event.total and bar.total != event.total:
                bar.total = event.total
            if event.done >= bar.n:
                bar.update(event.done - bar.n)
            if event.kind == "info" and event.message:
                write(event.message)
            elif event.message:
                bar.set_postfix_str(event.message, refresh=False)
            if on_event is not None:
                on_event(event, write)
    finally:
        try:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # stopped between two events (Ctrl-C, SIGTERM): the job cleans up now, not at exit
        finally:
            if bar is not None:
                bar.close()
    return first, last
