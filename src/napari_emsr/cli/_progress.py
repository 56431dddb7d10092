"""The CLI's one progress adapter, and its phrasing of the library's error hints.

:func:`drive` runs any job's generator of :class:`napari_emsr.events.Event` to the end with one
tqdm bar (``done`` / ``total`` in the job's unit, the event's ``message`` beside it), writes
``"info"`` messages as lines that keep the bar intact, hands every event to the subcommand's own
``on_event`` (for what only it shows: a plan, a validation table), and closes the generator on the
way out (also on Ctrl-C), so that the job's clean-up runs before the command ends.

When the stream is not a terminal (a log file, a pipe, a notebook) there is no bar but plain lines
(:class:`LogLines`): one every :data:`LOG_INTERVAL_S` seconds (the environment variable
``EMSR_PROGRESS_SECONDS`` overrides it), or after each slice of a slice-wise job (at most ten per
interval), and a final line where the run ended. No carriage returns: a 15-minute fine-tune logs
about a hundred progress lines.

:func:`cli_message` phrases an :class:`napari_emsr.errors.EMSRError`'s hints as options of the
command line (``overwrite`` -> ``--overwrite``, ``pixel_size`` -> ``--pixel-size NM``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Callable, Iterator

from napari_emsr.errors import EMSRError, Hint
from napari_emsr.events import Event

__all__ = ["drive", "cli_option", "cli_message", "Writer", "LogLines", "LOG_INTERVAL_S", "log_interval"]

#: writes one line without breaking the progress bar
Writer = Callable[[str], None]

#: library options that the command line spells differently from ``--option-with-dashes``
CLI_SPELLING = {"free_space": "", "learning_rate": "--learning-rate"}

#: seconds between two progress lines when the output is not a terminal (``EMSR_PROGRESS_SECONDS``)
LOG_INTERVAL_S = 10.0
_INTERVAL_ENV = "EMSR_PROGRESS_SECONDS"


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


def log_interval() -> float:
    """Return the seconds between two progress lines in a log: ``EMSR_PROGRESS_SECONDS``, else :data:`LOG_INTERVAL_S`.

    A value that is not a number >= 0 is ignored (the default is used); 0 writes a line per event.
    """
    try:
        seconds = float(os.environ.get(_INTERVAL_ENV, ""))
    except ValueError:
        return LOG_INTERVAL_S
    return seconds if seconds >= 0 else LOG_INTERVAL_S


def _interval(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LogLines:
    """Progress as plain lines, for a stream that is not a terminal (no carriage returns, no bar).

    The first line once the run has gone on for ``interval`` seconds, then one when ``interval``
    seconds have passed since the last, or after each slice of a slice-wise job (an event of kind or
    unit ``"slice"``) once a tenth of the interval has; the ``"done"`` event always has its line, and
    :meth:`close` writes where a run that wrote lines but did not finish stopped. So a run shorter
    than the interval writes one line (or, if it fails, none: its error says the rest).
    """

    def __init__(self, desc: str, out: IO[str], interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.desc, self.out, self.interval, self.clock = desc, out, interval, clock
        self.start = clock()
        self.last_line: float | None = None  # when the last line was written
        self.pending: Event | None = None  # the last event, if no line shows it yet
        self.lines = 0

    def update(self, event: Event) -> None:
        """Take one event of the run; write a line if one is due (``"info"`` events have their own line)."""
        if event.kind == "info":
            return
        self.pending = event
        now = self.clock()
        if event.kind == "done":
            due = True
        elif self.last_line is None:  # a run shorter than the interval needs no progress lines
            due = now - self.start >= self.interval
        else:
            since = now - self.last_line
            sliced = event.kind == "slice" or event.unit == "slice"
            due = since >= self.interval or (sliced and since >= self.interval / 10)
        if due:
            self._line(event, now)

    def close(self, outcome: str) -> None:
        """Write the final line unless the last one showed the end.

        ``outcome`` says how a run that did not finish ended: ``"stopped"``, ``"interrupted"``, ``"failed"``.
        """
        if self.pending is not None and self.lines:
            self._line(self.pending, self.clock(), outcome)

    def _line(self, event: Event, now: float, outcome: str = "") -> None:
        unit = event.unit or "it"
        units = unit if unit.endswith("s") else unit + "s"
        parts = [f"{event.done}/{event.total} {units}" if event.total else f"{event.done} {units}"]
        if event.total and event.kind != "done":
            parts[0] += f" ({100 * min(event.done / event.total, 1.0):.0f}%)"
        parts.append(f"{_interval(now - self.start)} elapsed")
        if event.kind == "done":
            parts.append("done")
        elif outcome:
            parts.append(outcome)
        elif event.eta is not None:
            parts.append(f"{_interval(event.eta)} left")
        message = f"; {event.message}" if event.message else ""
        print(f"{self.desc}: {', '.join(parts)}{message}", file=self.out, flush=True)
        self.last_line, self.pending, self.lines = now, None, self.lines + 1


def drive(
    events: Iterator[Event],
    *,
    desc: str,
    on_event: Callable[[Event, Writer], None] | None = None,
    quiet: bool = False,
    file: IO[str] | None = None,
    interval: float | None = None,
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
        No bar and no progress lines (the lines of ``write`` and ``"info"`` events are still written).
    file : file, optional
        Where the bar and the lines go (default: standard error). On a terminal the bar is tqdm's;
        elsewhere (a log, a pipe, a notebook) progress is plain lines (:class:`LogLines`).
    interval : float, optional
        Seconds between two progress lines when ``file`` is not a terminal (default:
        :func:`log_interval`).
    """
    out = sys.stderr if file is None else file
    isatty = getattr(out, "isatty", None)
    tty = bool(isatty is not None and isatty())
    bar: Any = None
    log = None if quiet or tty else LogLines(desc, out, log_interval() if interval is None else interval)
    first = last = None

    def write(line: str) -> None:
        if bar is not None and not bar.disable:
            bar.write(line, file=out)
        else:
            print(line, file=out, flush=log is not None)

    outcome = "failed"  # how the final progress line of a log says the run ended without its "done" event
    try:
        for event in events:
            if tty and bar is None:
                bar = _bar(event, desc, out, quiet)
            first, last = first or event, event
            if bar is not None:
                _advance(bar, event)
            elif log is not None:
                log.update(event)
            if event.kind == "info" and event.message:
                write(event.message)
            if on_event is not None:
                on_event(event, write)
        outcome = "stopped"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        try:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # stopped between two events (Ctrl-C, SIGTERM): the job cleans up now, not at exit
        finally:
            if bar is not None:
                bar.close()
            if log is not None:
                log.close(outcome)
    return first, last


def _bar(event: Event, desc: str, out: IO[str], quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=event.total, initial=event.done, unit=event.unit or "it", desc=desc, file=out,
                dynamic_ncols=True, disable=True if quiet else None)  # fmt: skip


def _advance(bar: Any, event: Event) -> None:
    if event.total and bar.total != event.total:
        bar.total = event.total
    if event.done >= bar.n:
        bar.update(event.done - bar.n)
    if event.kind != "info" and event.message:
        bar.set_postfix_str(event.message, refresh=False)
