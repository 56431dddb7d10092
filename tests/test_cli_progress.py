"""The CLI's progress in a log (not a terminal): a few plain lines, never a line per step; tqdm on a terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest

from napari_emsr.cli._progress import LOG_INTERVAL_S, LogLines, drive, log_interval
from napari_emsr.events import Event


def _steps(n: int, *, unit: str = "step", kind: str = "step", log: list | None = None):
    try:
        yield Event("demo", "start", total=n, unit=unit)
        for i in range(1, n + 1):
            if i == 3:
                yield Event("demo", "info", done=i - 1, total=n, unit=unit, message="a line of its own")
            yield Event("demo", kind, done=i, total=n, unit=unit, eta=float(n - i), message=f"{kind} {i}/{n}")
        yield Event("demo", "done", done=n, total=n, unit=unit, elapsed=1.0)
    finally:
        if log is not None:
            log.append("closed")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_many_fast_events_make_a_few_plain_lines():
    out = io.StringIO()
    first, last = drive(_steps(20_000), desc="emsr demo", file=out)
    assert first.kind == "start" and last.kind == "done"
    text = out.getvalue()
    assert "\r" not in text
    # faster than the interval: the info line and the final line only
    info, final = text.splitlines()
    assert info == "a line of its own" and final.startswith("emsr demo: 20000/20000 steps, 0:0")
    assert final.endswith(" elapsed, done")


def test_a_line_per_interval_and_per_slice_on_a_clock():
    clock, out = _Clock(), io.StringIO()
    lines = LogLines("emsr demo", out, 10.0, clock=clock)
    for i in range(1, 1001):  # 1000 steps of 0.1 s: a line every 10 s, the first one 10 s in
        clock.now = 0.1 * i
        lines.update(Event("demo", "step", done=i, total=1000, unit="step", eta=0.1 * (1000 - i)))
    written = out.getvalue().splitlines()
    assert len(written) == 10 and written[0] == "emsr demo: 100/1000 steps (10%), 0:10 elapsed, 1:30 left"
    lines.update(Event("demo", "done", done=1000, total=1000, unit="step"))
    assert out.getvalue().splitlines()[-1] == "emsr demo: 1000/1000 steps, 1:40 elapsed, done"

    clock, out = _Clock(), io.StringIO()
    lines = LogLines("emsr export", out, 10.0, clock=clock)
    for i in range(1, 301):  # slice-wise: a line per slice, at most one a second (a tenth of the interval)
        clock.now = 10 + 0.25 * i
        lines.update(Event("export", "slice", done=i, total=300, unit="slice", message=f"slice {i}"))
    assert len(out.getvalue().splitlines()) == 75  # the first at 10.25 s, then one every 4 slices
    lines.close("interrupted")  # the final line says where the run stopped
    assert out.getvalue().splitlines()[-1] == "emsr export: 300/300 slices (100%), 1:25 elapsed, interrupted; slice 300"


def test_a_run_that_fails_early_writes_only_its_error():
    def job():
        yield Event("demo", "start", total=5, unit="tile")
        raise OSError("disk full")

    out = io.StringIO()
    with pytest.raises(OSError, match="disk full"):
        drive(job(), desc="emsr demo", file=out)
    assert out.getvalue() == ""  # the CLI's one error line stays the only line


def test_every_event_with_interval_zero_and_the_env_variable(monkeypatch):
    out = io.StringIO()
    drive(_steps(4), desc="emsr demo", file=out, interval=0.0)
    lines = out.getvalue().splitlines()
    assert lines[0] == "emsr demo: 0/4 steps (0%), 0:00 elapsed"
    assert lines[1] == "emsr demo: 1/4 steps (25%), 0:00 elapsed, 0:03 left; step 1/4"
    assert "a line of its own" in lines and lines[-1] == "emsr demo: 4/4 steps, 0:00 elapsed, done"
    monkeypatch.setenv("EMSR_PROGRESS_SECONDS", "2.5")
    assert log_interval() == 2.5
    for bad in ("soon", "-1", ""):
        monkeypatch.setenv("EMSR_PROGRESS_SECONDS", bad)
        assert log_interval() == LOG_INTERVAL_S == 10.0
    quiet = io.StringIO()
    drive(_steps(4), desc="emsr demo", file=quiet, interval=0.0, quiet=True)
    assert quiet.getvalue() == "a line of its own\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_keeps_the_tqdm_bar():
    out, log = _Terminal(), []
    drive(_steps(50, log=log), desc="emsr demo", file=out)
    text = out.getvalue()
    assert "\r" in text and "emsr demo: 100%" in text and "a line of its own" in text
    assert log == ["closed"]


def test_a_log_of_the_command_line_is_bounded(tmp_path):
    """A real process with its standard error in a file: a line per EMSR_PROGRESS_SECONDS, no carriage returns."""
    script = textwrap.dedent(
        """
        import time
        from napari_emsr.cli._progress import drive
        from napari_emsr.events import Event

        def job(n=4000):
            yield Event("demo", "start", total=n, unit="step")
            for i in range(1, n + 1):
                time.sleep(0.0005)
                yield Event("demo", "step", done=i, total=n, unit="step", message=f"step {i}/{n}")
            yield Event("demo", "done", done=n, total=n, unit="step")

        started = time.monotonic()
        drive(job(), desc="emsr demo")
        print(time.monotonic() - started)
        """
    )
    env = {**os.environ, "EMSR_PROGRESS_SECONDS": "0.2"}
    with open(tmp_path / "err.log", "w") as err:
        result = subprocess.run([sys.executable, "-c", script], stderr=err, stdout=subprocess.PIPE, text=True,
                                env=env, timeout=120)  # fmt: skip
    assert result.returncode == 0
    seconds = float(result.stdout)
    log = (tmp_path / "err.log").read_text()
    lines = log.splitlines()
    assert "\r" not in log and lines[-1].startswith("emsr demo: 4000/4000 steps") and lines[-1].endswith(", done")
    assert 1 <= len(lines) <= seconds / 0.2 + 2  # a line per 0.2 s, plus the final one (not one per step: 4000)
    assert all(line.startswith("emsr demo: ") for line in lines)
