"""The one event type, the structured error hints, and the CLI's progress adapter."""

from __future__ import annotations

import io

import pytest

from napari_emsr.cli._progress import cli_message, cli_option, drive
from napari_emsr.errors import EMSRError, Hint, HintedValueError, OutputExistsError, PartialOutputError
from napari_emsr.events import Clock, Event


def test_fraction_follows_done_total_and_done_is_whole():
    assert Event("predict", "tiles", done=3, total=12).fraction == pytest.approx(0.25)
    assert Event("train", "step", done=0, total=0).fraction is None  # unknown total
    assert Event("train", "done", done=7, total=10).fraction == 1.0  # a budget can end a job early
    assert Event("predict", "tiles", done=15, total=12).fraction == 1.0  # never above 1


def test_clock_eta_is_the_rate_of_this_run():
    clock = Clock()
    clock.start -= 10.0  # as if 10 s had passed
    assert clock.eta(0, 100) is None
    assert clock.eta(25, 100) == pytest.approx(30.0, rel=0.01)
    assert clock.eta(100, 100) == 0.0


def test_python_phrasing_names_keywords_not_flags():
    exc = PartialOutputError(
        "out.ome.zarr.partial holds the partial result of an interrupted run",
        Hint("resume", True, "to continue it"),
        Hint("overwrite", True, "to start again"),
    )
    assert isinstance(exc, FileExistsError) and isinstance(exc, EMSRError)
    assert str(exc) == (
        "out.ome.zarr.partial holds the partial result of an interrupted run: pass resume=True to continue it, "
        "or pass overwrite=True to start again"
    )
    assert "--" not in str(exc)


def test_cli_phrasing_names_flags():
    exc = OutputExistsError("model.safetensors exists", Hint("overwrite", True, "to replace it"))
    assert cli_message(exc) == "model.safetensors exists: use --overwrite to replace it"
    assert cli_option(Hint("pixel_size", "NM")) == "give --pixel-size NM"
    assert cli_option(Hint("device", "cpu")) == "give --device cpu"
    assert cli_option(Hint("free_space")) == "free some disk space"
    plain = ValueError("no hints here")
    assert cli_message(plain) == "no hints here"


def test_value_placeholders_and_values_in_python_phrasing():
    exc = HintedValueError("the pixel size is unknown", Hint("pixel_size", "NM", "to say it"))
    assert str(exc) == "the pixel size is unknown: pass pixel_size=NM to say it"
    exc = HintedValueError("no GPU", Hint("device", "cpu"))
    assert str(exc) == "no GPU: pass device='cpu'"
    assert isinstance(exc, ValueError)


def _job(n: int, *, fail_at: int | None = None, log: list):
    try:
        yield Event("demo", "start", total=n, unit="tile", message="starting")
        for i in range(1, n + 1):
            if i == fail_at:
                raise RuntimeError("broken")
            yield Event("demo", "info" if i == 2 else "tiles", done=i, total=n, unit="tile", message=f"unit {i}")
        yield Event("demo", "done", done=n, total=n, unit="tile", payload="result")
    finally:
        log.append("closed")


def test_drive_runs_to_the_end_writes_info_and_hands_over_every_event():
    log: list = []
    seen: list = []
    out = io.StringIO()
    first, last = drive(_job(4, log=log), desc="demo", on_event=lambda e, write: seen.append(e.kind), file=out)
    assert first.kind == "start" and last.kind == "done" and last.payload == "result"
    assert seen == ["start", "tiles", "info", "tiles", "tiles", "done"]
    assert "unit 2" in out.getvalue()  # the info message is a line of its own
    assert log == ["closed"]


def test_drive_closes_the_job_when_the_consumer_stops():
    log: list = []

    def stop(event, write):
        if event.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(_job(5, log=log), desc="demo", on_event=stop, file=io.StringIO())
    assert log == ["closed"]  # the job's clean-up ran before the command ends


def test_drive_passes_the_job_error_on():
    log: list = []
    with pytest.raises(RuntimeError, match="broken"):
        drive(_job(5, fail_at=3, log=log), desc="demo", file=io.StringIO())
    assert log == ["closed"]
