"""Every panel run also shows in napari's activity dock, and the dock's Cancel cancels it (a real viewer)."""

from __future__ import annotations

import threading

from napari.utils.progress import progress

from napari_emsr._napari.common.run_panel import RunPanel
from napari_emsr.events import Event

from .conftest import run_and_wait
from .test_super_resolve_widget import _widget as super_resolve_widget


def _dock_bars(viewer):
    """The activity dock's bars of this viewer, by their progress object."""
    from napari._qt.widgets.qt_progress_bar import QtLabeledProgressBar

    dialog = viewer.window._qt_window._activity_dialog
    return {bar.progress: bar for bar in dialog.findChildren(QtLabeledProgressBar)}


def _gated(n: int, gates: list[threading.Event], log: list, error: Exception | None = None):
    """A job of ``n`` tiles that waits for ``gates[i]`` before tile i + 1 (so the test sees each step)."""
    try:
        yield Event("demo", "start", total=n, unit="tile")
        for i in range(1, n + 1):
            gates[i - 1].wait(10)
            if error is not None and i == 2:
                raise error
            yield Event("demo", "tiles", done=i, total=n, unit="tile", message=f"slice {i}/{n}")
        yield Event("demo", "done", done=n, total=n, unit="tile", payload="result")
    finally:
        log.append("closed")


def _panel(viewer, qtbot):
    panel = RunPanel("Demo", run_text="Run demo")
    viewer.window.add_dock_widget(panel, name="demo")
    return panel


def test_a_run_shows_in_the_activity_dock_and_leaves_it_when_done(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    panel = _panel(viewer, qtbot)
    gates, log = [threading.Event() for _ in range(3)], []
    panel.start(lambda: _gated(3, gates, log), lambda e: None, lambda outcome, error: None)
    activity = panel.activity
    assert activity is not None and activity in progress._all_instances
    qtbot.waitUntil(lambda: activity.total == 3)  # the start event's total
    bar = _dock_bars(viewer)[activity]
    assert bar.qt_progress_bar.maximum() == 3 and bar.cancel_button.isVisibleTo(bar)
    assert activity.n == 0 and bar.description_label.text() == "Demo: Run demo: "
    for i in (1, 2):
        gates[i - 1].set()
        qtbot.waitUntil(lambda i=i: activity.n == i)
        assert bar.qt_progress_bar.value() == i
        assert bar.description_label.text() == f"Demo: Run demo - slice {i}/3: "
    with qtbot.waitSignal(panel.ended, timeout=10_000) as ended:
        gates[2].set()
    assert ended.args == ["done"] and log == ["closed"]
    assert activity.n == 3 and panel.activity is None
    assert activity not in progress._all_instances  # closed: the dock drops its bar
    qtbot.waitUntil(lambda: activity not in _dock_bars(viewer))


def test_the_docks_cancel_cancels_the_run_like_the_panels(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    panel = _panel(viewer, qtbot)
    gates, log, seen = [threading.Event() for _ in range(50)], [], []
    panel.start(lambda: _gated(50, gates, log), seen.append, lambda outcome, error: None)
    activity = panel.activity
    qtbot.waitUntil(lambda: activity.total == 50)
    bar = _dock_bars(viewer)[activity]
    with qtbot.waitSignal(panel.ended, timeout=10_000) as ended:
        bar.cancel_button.click()  # the activity dock's Cancel
        assert panel.status.text() == panel.cancelling_text and not panel.cancel_button.isEnabled()
        assert "cancelling" in bar.description_label.text()
        for gate in gates:
            gate.set()
    assert ended.args == ["cancelled"] and log == ["closed"] and len(seen) < 50
    assert panel.status.text() == panel.cancelled_text and panel.progress.format() == "cancelled"
    assert activity not in progress._all_instances and panel.activity is None
    qtbot.waitUntil(lambda: activity not in _dock_bars(viewer))


def test_the_panels_cancel_and_a_failure_close_the_docks_bar(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    panel = _panel(viewer, qtbot)
    gates, log = [threading.Event() for _ in range(9)], []
    panel.start(lambda: _gated(9, gates, log), lambda e: None, lambda outcome, error: None)
    activity = panel.activity
    qtbot.waitUntil(lambda: activity.total == 9)
    with qtbot.waitSignal(panel.ended, timeout=10_000) as ended:
        panel.cancel_button.click()
        assert "cancelling" in _dock_bars(viewer)[activity].description_label.text()
        for gate in gates:
            gate.set()
    assert ended.args == ["cancelled"] and activity not in progress._all_instances

    gates, log = [threading.Event() for _ in range(3)], []
    for gate in gates:
        gate.set()
    with qtbot.waitSignal(panel.ended, timeout=10_000) as ended:
        panel.start(lambda: _gated(3, gates, log, error=OSError("disk full")), lambda e: None, lambda o, e: None)
        failing = panel.activity
    assert ended.args == ["failed"] and failing not in progress._all_instances and panel.activity is None


def test_super_resolve_shows_its_tiles_in_the_activity_dock(sample, qtbot, model_file):
    viewer = sample
    widget = super_resolve_widget(viewer, qtbot, model_file)  # the LR layer, the tiny model, on the CPU
    widget.scope.setCurrentText("Whole stack (current slice first)")
    seen: list = []

    def record(event):  # the dock's bar when the panel receives an event (it shows that event just after)
        activity = widget.run_panel.activity
        seen.append((event, activity, activity.total, activity.n))

    widget.run_panel.progressed.connect(record)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    (activity,) = {activity for _, activity, *_ in seen}  # one bar for the run
    assert activity not in progress._all_instances  # closed
    events = [event for event, *_ in seen]
    assert events[0].kind == "start" and events[-1].kind == "done" and events[-1].total == 16  # a tile per slice
    assert all(total == 16 for *_, total, _ in seen[1:])  # the plan's tiles, from the start event on
    # it follows the tiles done, never ahead (while the dock redraws, the next events may arrive: it catches up)
    done = [n for *_, n in seen]
    assert done == sorted(done) and all(n <= event.done for n, event in zip(done[1:], events[:-1], strict=True))
    assert (activity.total, activity.n) == (events[-1].total, events[-1].done)
    assert activity.desc.startswith("Super-resolve - slice ")  # the label, then the slices done
