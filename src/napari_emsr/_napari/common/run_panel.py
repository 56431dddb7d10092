"""Run / Cancel buttons, a progress bar with an ETA and a status line around one background worker.

The work is a generator of :class:`napari_emsr.events.Event` objects, the one event type of every
long job of the library (prediction, writing, training, evaluation): the bar shows any of them the
same way (:func:`event_progress`), and each panel reads the payloads it cares about in its
``on_event`` callback. It runs in napari's ``create_worker`` thread: one level of threading, the
GUI thread only receives events.
Cancel asks the work to stop at its next event (between two tiles, or two training steps): the
worker thread then closes the generator, so its clean-up (deleting a temporary file, saving a
training checkpoint) runs at once, off the GUI thread, before the panel reports the end.

Each run also has a bar in napari's activity dock (:class:`ActivityProgress`, a
``napari.utils.progress``): total, done and description from the events, closed when the run ends,
is cancelled or fails; the dock's Cancel button cancels the run as the panel's does.

Errors raised by the work become napari error notifications, and its warnings (e.g. a model with
random weights, a pixel size far from the model's) warning notifications: nothing is raised into
the viewer's event loop, and the viewer keeps running. A library error's hints
(:class:`napari_emsr.errors.Hint`) are phrased in the panels' terms (:func:`gui_message`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Generator, Iterator, Mapping

from napari.utils.progress import cancelable_progress
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from napari_emsr.errors import EMSRError, Hint
from napari_emsr.events import Event

__all__ = ["RunPanel", "ActivityProgress", "format_seconds", "event_progress", "gui_message", "GUI_CONTROLS"]

_STEPS = 1000
#: the most characters of an event's message shown in the activity dock's description
_DOCK_MESSAGE = 60


def format_seconds(seconds: float | None) -> str:
    """'0:07', '12:30' or '1:02:03'; '...' when unknown."""
    if seconds is None:
        return "..."
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def event_progress(event: Event) -> tuple[float | None, str]:
    """How any job's event shows in the bar: (share done or None, the bar's text).

    The share is ``done / total``, or the share of the time when the job's ETA says more (a
    training run stopped by a time budget before its last step).
    """
    fraction = event.fraction
    if event.kind != "done" and event.eta is not None and event.elapsed > 0:
        fraction = max(fraction or 0.0, event.elapsed / (event.elapsed + max(event.eta, 0.0)))
    parts = [event.message] if event.message else []
    if event.kind == "start" and not parts:
        return fraction, "%p%"
    parts.append(f"{format_seconds(event.elapsed)} elapsed")
    if event.kind != "done":
        parts.append(f"{format_seconds(event.eta)} left")
    return fraction, f"%p%  ({', '.join(parts)})"


#: how the panels name the library's options in an error's hints (napari_emsr.errors.Hint.option)
GUI_CONTROLS = {
    "overwrite": "tick \"Replace an existing output\"",
    "resume": "press \"Resume\"",
    "device": "choose another Device",
    "tile": "choose a smaller Tile",
    "pixel_size": "set the layer's pixel size (Layer > scale) or the panel's \"Pixel size\"",
    "intensity_range": "set the \"Intensity range\"",
    "model": "choose a trained model",
    "learning_rate": "lower the learning rate",
    "offset": "move the HR field by hand",
    "free_space": "free some disk space",
    "lr_pixel_size": "give the LR layer its scale in nm (Layer properties, or layer.scale)",
    "hr_pixel_size": "give the HR layer its scale in nm (Layer properties, or layer.scale)",
    "scale": "start from a model file, whose scale is then used",
    "overlap": "choose a smaller Overlap",
    "output": "use the Export panel (\"Super-resolve to disk\")",
    "region": "choose a Scope with \"region in view\" or \"Current slice\"",
}


def _gui_option(hint: Hint, controls: Mapping[str, str]) -> str:
    if hint.option in controls:
        text = controls[hint.option]
        return f"{text} ({hint.value})" if hint.option == "device" and isinstance(hint.value, str) else text
    return f"set {hint.option.replace('_', ' ')} to {hint.value}"


def gui_message(error: BaseException | str, controls: Mapping[str, str] | None = None) -> str:
    """Return ``error``'s message, its hints (if it has any) phrased in the panels' terms.

    ``controls`` overrides :data:`GUI_CONTROLS` for one panel (its own labels).
    """
    if isinstance(error, EMSRError):
        names = {**GUI_CONTROLS, **(controls or {})}
        return error.phrased(lambda hint: _gui_option(hint, names))
    return str(error)


class ActivityProgress(cancelable_progress):
    """One run's bar in napari's activity dock: ``total``, ``n`` and the description follow its events.

    The dock shows a Cancel button for it (a ``cancelable_progress``); pressing it calls
    ``on_cancel`` (the panel's :meth:`RunPanel.cancel`). Without a viewer it is a tqdm bar on the
    terminal, as any ``napari.utils.progress``.
    """

    def __init__(self, label: str, on_cancel: Callable[[], None]) -> None:
        self.label = label
        self._on_cancel = on_cancel
        self._latest: Event | None = None  # the newest event not shown yet
        self._busy = False
        self._cancelling = False
        self._text = label
        self._total_shown = 0
        super().__init__(desc=label, total=0)  # 0: busy until the first event gives the total

    def cancel(self) -> None:
        """Cancel the run (what the activity dock's Cancel button calls)."""
        super().cancel()
        self._on_cancel()

    def cancelling(self) -> None:
        """Say in the dock that the run is stopping."""
        self._cancelling = True
        self._describe(f"{self.label} (cancelling)")

    def show(self, event: Event) -> None:
        """Move the bar to ``event``; the newest event wins when the dock's redraw delivers the next one."""
        self._latest = event
        if self._busy:  # called again while the dock processes Qt events: the loop below shows it
            return
        self._busy = True
        try:
            while self._latest is not None and not self.disable:  # disable: closed meanwhile
                event, self._latest = self._latest, None
                self._apply(event)
        finally:
            self._busy = False

    def _apply(self, event: Event) -> None:
        if event.total and event.total != self._total_shown:
            self._total_shown = self.total = event.total
        if event.done != self.n:
            self.update(event.done - self.n)
        if not self._cancelling and event.kind != "info":
            message = event.message[:_DOCK_MESSAGE]
            self._describe(f"{self.label} - {message}" if message else self.label)

    def _describe(self, text: str) -> None:
        if text != self._text and not self.disable:
            self._text = text
            self.set_description(text)


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

    def __init__(
        self,
        title: str,
        run_text: str = "Run",
        parent: QWidget | None = None,
        *,
        cancel_tip: str = "Stop after the current tile; nothing half-made is kept.",
        cancelling_text: str = "Cancelling after the current tile...",
        cancelled_text: str = "Cancelled: nothing was kept.",
        controls: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.title = title
        #: this panel's names for the library's options in error hints (over GUI_CONTROLS)
        self.controls = dict(controls or {})
        self.cancelling_text, self.cancelled_text = cancelling_text, cancelled_text
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel", enabled=False)  # type: ignore[call-overload]
        self.cancel_button.setToolTip(cancel_tip)
        self.progress = QProgressBar(minimum=0, maximum=_STEPS, value=0, textVisible=True)  # type: ignore[call-arg]
        self.status = QLabel(wordWrap=True)  # type: ignore[call-overload]
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
        self._events: Generator[Any, None, None] | None = None
        self._on_event: Callable[[Any], None] = lambda event: None
        self._on_end: Callable[[str, BaseException | None], None] = lambda outcome, error: None
        self._error: BaseException | None = None
        self._done = False
        self._stop = threading.Event()
        #: the run's bar in napari's activity dock (None between runs)
        self.activity: ActivityProgress | None = None

    @property
    def running(self) -> bool:
        """Whether a worker is running (or stopping)."""
        return self.worker is not None

    def start(
        self,
        make_events: Callable[[], Generator[Any, None, None]],
        on_event: Callable[[Any], None],
        on_end: Callable[[str, BaseException | None], None],
    ) -> None:
        """Run ``make_events()`` in a worker thread.

        ``on_event(event)`` runs in the GUI thread for every event; ``on_end(outcome, error)``
        runs once when the work stops (outcome ``"done"``, ``"cancelled"`` or ``"failed"``; the
        work is done once it has yielded its ``"done"`` event).
        """
        from napari.qt.threading import create_worker

        if self.running:
            raise RuntimeError("a run is in progress; cancel it first")
        self._on_event, self._on_end = on_event, on_end
        self._events, self._error, self._done = None, None, False
        self._stop.clear()
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
        self.activity = ActivityProgress(self.activity_label(), self.cancel)
        self.worker.start()

    def _work(self, make_events: Callable[[], Generator[Any, None, None]]) -> Iterator[Any]:
        """Return the worker's generator (runs in the worker thread); stops, and closes the work, on Cancel."""
        if self._stop.is_set():
            return
        self._events = events = make_events()
        for event in events:
            yield event
            if self._stop.is_set():
                events.close()  # the work's clean-up runs here, in the worker thread
                return

    def activity_label(self) -> str:
        """Return the run's name in the activity dock: the title, and the Run button's text if it says more."""
        action = self.run_button.text().replace("&", "")
        return self.title if action == self.title else f"{self.title}: {action}"

    def cancel(self) -> None:
        """Ask the work to stop at its next event (between two tiles, or steps)."""
        if self.worker is not None:
            self.status.setText(self.cancelling_text)
            self.cancel_button.setEnabled(False)
            self._stop.set()
            if self.activity is not None:
                self.activity.cancelling()

    def _yielded(self, event: Event) -> None:
        fraction, text = event_progress(event)
        self._done = self._done or event.kind == "done"
        if fraction is not None:
            self.progress.setValue(round(_STEPS * min(max(fraction, 0.0), 1.0)))
        self.progress.setFormat(text)
        self._on_event(event)
        self.progressed.emit(event)
        if self.activity is not None:  # last: the dock processes Qt events while it redraws
            self.activity.show(event)

    def _errored(self, error: BaseException) -> None:
        from napari.utils.notifications import notification_manager, show_error

        self._error = error
        if isinstance(error, (ValueError, OSError, MemoryError)):  # the library's errors say what to do
            show_error(f"{self.title}: {gui_message(error, self.controls)}")
        else:  # anything else is a bug: napari's notification keeps the traceback
            notification_manager.receive_error(type(error), error, error.__traceback__)

    def _warned(self, args: tuple) -> None:
        from napari.utils.notifications import show_warning

        show_warning(f"{self.title}: {gui_message(args[0], self.controls)}")

    def _finished(self) -> None:
        if self._events is not None:
            self._events.close()  # runs the engine's clean-up now (a no-op if it finished)
        if self.activity is not None:
            activity, self.activity = self.activity, None
            activity.close()  # leaves the activity dock
        if self._done:
            outcome = "done"
        elif self._error is not None:
            outcome = "failed"
            self.status.setText(f"Failed: {gui_message(self._error, self.controls)}")
        else:
            outcome = "cancelled"
            self.status.setText(self.cancelled_text)
            self.progress.setValue(0)
            self.progress.setFormat("cancelled")
        self.worker, self._events = None, None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        try:
            self._on_end(outcome, self._error)
        finally:
            self.ended.emit(outcome)
