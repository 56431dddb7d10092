"""The one progress event every long job yields: prediction, training, fine-tuning, evaluation, export.

Every long operation of the library is a generator of :class:`Event` objects. The fields every
front end needs are the same for all jobs: ``kind``, ``done`` / ``total`` (in the job's ``unit``:
tiles, steps, slices), ``eta`` and ``elapsed`` in seconds, a one-line ``message`` and a ``payload``
whose type depends on the job and the kind (documented where the job is). So there is one progress
adapter in the CLI (:func:`napari_emsr.cli._progress.drive`) and one in napari
(:class:`napari_emsr._napari.common.run_panel.RunPanel`), and each job's own display reads only the
payloads it cares about.

Kinds shared by every job: ``"start"`` (payload: what the job will do), ``"info"`` (a message
only), ``"done"`` (the last event; payload: the job's result). Each job adds its own (``"tiles"``,
``"slice"``, ``"step"``, ``"validation"``, ``"preview"``, ...).

Closing the generator (``gen.close()``; Cancel in napari, Ctrl-C in the CLI) stops the job between
two units of work and runs its clean-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "Clock"]


@dataclass(frozen=True)
class Event:
    """One progress report of a long job.

    Attributes
    ----------
    job : str
        ``"predict"``, ``"train"``, ``"finetune"``, ``"evaluate"`` or ``"export"``.
    kind : str
        ``"start"``, ``"info"``, ``"done"``, or one of the job's own kinds.
    done, total : int
        Units of work done and in all (``total`` may grow, e.g. when an out-of-memory error forces
        smaller tiles; 0 when unknown).
    unit : str
        What ``done`` counts: ``"tile"``, ``"step"``, ``"slice"``, ...
    eta : float or None
        Estimated seconds left (None while unknown).
    elapsed : float
        Seconds since the job started.
    message : str
        One line for a status bar or a log (may be empty).
    payload : object
        The kind's data (a plan summary, a finished slice, validation scores, the result, ...).
    """

    job: str
    kind: str
    done: int = 0
    total: int = 0
    unit: str = ""
    eta: float | None = None
    elapsed: float = 0.0
    message: str = ""
    payload: Any = None

    @property
    def fraction(self) -> float | None:
        """Share of the work done, 0..1 (None when the total is unknown)."""
        if self.kind == "done":
            return 1.0
        return min(max(self.done / self.total, 0.0), 1.0) if self.total > 0 else None


class Clock:
    """Elapsed time of a job, and an ETA from the rate of the work done in this run."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Return seconds since the clock started."""
        return time.perf_counter() - self.start

    def eta(self, done: int, total: int) -> float | None:
        """Return the seconds left at this run's rate (None before the first unit is done)."""
        return max(total - done, 0) * self.elapsed() / done if done > 0 else None
