"""Run / Cancel buttons, a progress bar with an ETA and a status line around one background worker.

The work is a generator of :class:`napari_emsr.predict.Progress` events (the engine's
:func:`~napari_emsr.iter_super_resolve`, or a writer's loop). It runs in napari's
``create_worker`` thread: one level of threading, the GUI thread only receives events.
Cancel calls ``worker.quit()``, which stops the generator at its next event (between two
tiles); the panel then closes the generator, so the engine's clean-up (deleting a temporary
file) runs at once instead of whenever it is garbage-collected.

Errors raised by the work become napari error notifications, and its warnings (e.g. a model with
random weights, a pixel size far from the model's) warning notifications: nothing is raised into
the viewer's event loop, and the viewer keeps running.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

__all__ = ["RunPanel", "format_seconds"]

_STEPS = 1000


def format_seconds(seconds: float | None) -> str:
    """'0:07', '12:30' or '1:02:03'; '...' when unknown."""
    if seconds is None:
        return "..."
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunPanel(QWidget):
    """Starts a generator in a worker thread, shows its progress, and cancels it between steps.

    Signals
    -------
    progressed(object)
        Every event of the work, in the GUI thread, after the ``on_event`` callback.
    ended(str)
        ``"done"``, ``"cancelled"`` or ``"failed"``, once the worker has stopped and the panel
        has cleaned up (the ``on_end`` callback has run).
    """

    progressed = Signal(object)
    ended = Signal(str)

    def __init__(self, title: str, run_text: str = "Run", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.setToolTip("Stop after the current tile; nothing half-made is kept.")
        self.progress = QProgressBar(minimum=0, maximum=_STEPS, value=0, textVisible=True)
        self.status = QLabel(wordWrap=True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.run_button, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.cancel_button.clicked.connect(self.cancel)
        self.worker: Any = None
        self._events: Iterator[Any] | None = None
        self._on_event: Callable[[Any], None] = lambda event: None
        self._on_end: Callable[[str, BaseException | None], None] = lambda outcome, error: None
        self._error: BaseException | None = None
        self._done = False

    @property
    def running(self) -> bool:
        """Whether a worker is running (or stopping)."""
        return self.worker is not None

    def start(
        self,
        make_events: Callable[[], Iterator[Any]],
        on_event: Callable[[Any], None],
        on_end: Callable[[str, BaseException | None], None],
    ) -> None:
        """Run ``make_events()`` in a worker thread.

        ``on_event(event)`` runs in the GUI thread for every event; ``on_end(outcome, error)``
        runs once when the work stops (outcome ``"done"``, ``"cancelled"`` or ``"failed"``).
        """
        from napari.qt.threading import create_worker

        if self.running:
            raise RuntimeError("a run is in progress; cancel it first")
        self._on_event, self._on_end = on_event, on_end
        self._events, self._error, self._done = None, None, False
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status.setText("Starting...")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker = create_worker(
            self._work,
            make_events,
            _start_thread=False,
            _connect={
                "yielded": self._yielded,
                "errored": self._errored,
                "warned": self._warned,
                "finished": self._finished,
            },
        )
        self.worker.start()

    def _work(self, make_events: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        """The worker's generator (runs in the worker thread)."""
        self._events = make_events()
        yield from self._events

    def cancel(self) -> None:
        """Ask the work to stop at its next event (between two tiles)."""
        if self.worker is not None:
            self.status.setText("Cancelling after the current tile...")
            self.cancel_button.setEnabled(False)
            self.worker.quit()

    def _yielded(self, event: Any) -> None:
        if event.stage == "done":
            self._done = True
        self.progress.setValue(round(_STEPS * event.fraction))
        if event.stage != "start":
            eta = "" if event.stage == "done" else f", {format_seconds(event.eta)} left"
            slices = f"slice {event.slices_done}/{event.slices_total}, " if event.slices_total > 1 else ""
            self.progress.setFormat(f"%p%  ({slices}{format_seconds(event.elapsed)} elapsed{eta})")
        self._on_event(event)
        self.progressed.emit(event)

    def _errored(self, error: BaseException) -> None:
        from napari.utils.notifications import notification_manager, show_error

        self._error = error
        if isinstance(error, (ValueError, OSError, MemoryError)):  # the library's errors say what to do
            show_error(f"{self.title}: {error}")
        else:  # anything else is a bug: napari's notification keeps the traceback
            notification_manager.receive_error(type(error), error, error.__traceback__)

    def _warned(self, args: tuple) -> None:
        from napari.utils.notifications import show_warning

        show_warning(f"{self.title}: {args[0]}")

    def _finished(self) -> None:
        if self._events is not None:
            self._events.close()  # runs the engine's clean-up now (a no-op if it finished)
        if self._done:
            outcome = "done"
        elif self._error is not None:
            outcome = "failed"
            self.status.setText(f"Failed: {self._error}")
        else:
            outcome = "cancelled"
            self.status.setText("Cancelled: nothing was kept.")
            self.progress.setValue(0)
            self.progress.setFormat("cancelled")
        self.worker, self._events = None, None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        try:
            self._on_end(outcome, self._error)
        finally:
            self.ended.emit(outcome)
