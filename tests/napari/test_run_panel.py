"""The napari progress adapter: any job's events in one bar, hints phrased for the panels, Cancel."""

from __future__ import annotations

import threading

from napari_emsr._napari.common.run_panel import RunPanel, event_progress, gui_message
from napari_emsr.errors import Hint, OutputExistsError
from napari_emsr.events import Event


def test_event_progress_shows_any_job_the_same_way():
    fraction, text = event_progress(Event("predict", "tiles", done=5, total=20, eta=30.0, elapsed=10.0,
                                          message="slice 2/8"))  # fmt: skip
    assert fraction == 0.25
    assert text == "%p%  (slice 2/8, 0:10 elapsed, 0:30 left)"
    # a training run with a time budget: the time share says more than the step share
    fraction, _ = event_progress(Event("train", "step", done=10, total=1000, eta=60.0, elapsed=60.0))
    assert fraction == 0.5
    fraction, text = event_progress(Event("train", "done", done=10, total=1000, elapsed=120.0, message="step 10"))
    assert fraction == 1.0 and "left" not in text


def test_gui_phrasing_names_controls_not_flags():
    exc = OutputExistsError("model.safetensors exists", Hint("overwrite", True, "to replace it"))
    assert gui_message(exc) == 'model.safetensors exists: tick "Replace an existing output" to replace it'
    assert "--" not in gui_message(exc)
    # a panel with its own label for the option
    own = gui_message(exc, {"overwrite": 'tick "Replace an existing model file"'})
    assert own == 'model.safetensors exists: tick "Replace an existing model file" to replace it'


def _events(n: int, log: list, gate: threading.Event | None = None, error: Exception | None = None):
    try:
        yield Event("demo", "start", total=n, unit="tile")
        for i in range(1, n + 1):
            if gate is not None:
                gate.wait(5)
            if error is not None and i == 2:
                raise error
            yield Event("demo", "tiles", done=i, total=n, unit="tile", message=f"unit {i}/{n}")
        yield Event("demo", "done", done=n, total=n, unit="tile", payload="result")
    finally:
        log.append("closed")


def test_run_to_the_end(qtbot):
    panel = RunPanel("Demo")
    qtbot.addWidget(panel)
    log, seen, ends = [], [], []
    with qtbot.waitSignal(panel.ended, timeout=10_000) as ended:
        panel.start(lambda: _events(3, log), seen.append, lambda outcome, error: ends.append(outcome))
    assert ended.args == ["done"] and ends == ["done"]
    assert [e.kind for e in seen] == ["start", "tiles", "tiles", "tiles", "done"]
    assert panel.progress.value() == panel.progress.maximum()
    assert log == ["closed"] and not panel.running


def test_failure_is_phrased_for_the_panel(qtbot, notes):
    panel = RunPanel("Demo", controls={"overwrite": 'tick "Replace"'})
    qtbot.addWidget(panel)
    log: list = []
    error = OutputExistsError("out.ome.tif exists", Hint("overwrite", True, "to replace it"))
    with qtbot.waitSignal(panel.ended, timeout=10_000) as ended:
        panel.start(lambda: _events(3, log, error=error), lambda e: None, lambda outcome, error: None)
    assert ended.args == ["failed"]
    assert panel.status.text() == 'Failed: out.ome.tif exists: tick "Replace" to replace it'
    assert any('tick "Replace"' in m for m in notes("error"))
    assert log == ["closed"]


def test_cancel_closes_the_job_in_the_worker(qtbot):
    panel = RunPanel("Demo")
    qtbot.addWidget(panel)
    log: list = []
    gate = threading.Event()
    seen: list = []

    def on_event(event):
        seen.append(event)
        if event.kind == "start":
            panel.cancel()
            gate.set()

    with qtbot.waitSignal(panel.ended, timeout=10_000) as ended:
        panel.start(lambda: _events(50, log, gate), on_event, lambda outcome, error: None)
    assert ended.args == ["cancelled"]
    assert log == ["closed"]
    assert len(seen) < 50  # stopped between two units, long before the end
    assert panel.progress.format() == "cancelled"
