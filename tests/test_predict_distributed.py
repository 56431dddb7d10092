"""Prediction on a dask.distributed cluster: same output as one process, faults, resume, CLI.

Real data: FlyEM FIB-SEM validation slices (CC BY 3.0), 8 crops of 128 x 128; a tiny random-weight
model (mechanics only, never presented as trained). Clusters are real LocalClusters of worker
processes.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import distributed  # the 'distributed' extra is part of the 'test' extra: missing is a failure
import numpy as np
import pytest
import tifffile

# the 'distributed' extra is part of the 'test' extra: missing is a failure
from napari_emsr import open_volume, save_model, super_resolve  # noqa: E402
from napari_emsr.cli import main  # noqa: E402
from napari_emsr.io import partial_path  # noqa: E402
from napari_emsr.predict import iter_super_resolve_distributed, super_resolve_distributed  # noqa: E402
from napari_emsr.predict.distributed import choose_worker_device, parse_scheduler, worker_rank  # noqa: E402

from ._predict_models import sensitive_model  # noqa: E402

# dask.distributed clusters (worker processes)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")]

OPTIONS = dict(tile=32, overlap=8, device="cpu")


@pytest.fixture(scope="module")
def files(data_dir, tmp_path_factory):
    """An LR stack file (8 real slices, 128 x 128), a model file, and the single-process output."""
    from skimage.io import imread

    folder = tmp_path_factory.mktemp("dist")
    paths = sorted((data_dir / "validation_sample").glob("*.png"))[:8]
    stack = np.stack([imread(p)[150:278, 200:328] for p in paths])
    lr = folder / "lr.ome.tif"
    tifffile.imwrite(lr, stack, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.03, "PhysicalSizeY": 0.03})
    model = save_model(sensitive_model(3), folder / "tiny.safetensors")
    reference = super_resolve(lr, model, **OPTIONS)
    assert reference.shape == (8, 384, 384)
    return lr, model, reference


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl:
        with distributed.Client(cl) as c:
            yield c


def _read(path):
    with open_volume(path) as vol:
        return vol.data.compute()


def _assert_same(path, reference):
    out = _read(path)
    assert out.shape == reference.shape and out.dtype == reference.dtype
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1


def _done_flags(store):
    import zarr

    return np.asarray(zarr.open_group(str(store), mode="r")["emsr_done"][:])


def _kill_a_busy_worker(client):
    """SIGKILL the process of a worker that is running a task right now; returns its pid."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = [addr for addr, keys in client.processing().items() if keys]
        if busy:
            try:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            except (OSError, KeyError):  # that worker went away meanwhile (CommClosedError is an OSError)
                continue
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.005)
    raise AssertionError("no worker was running a task")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_choose_worker_device():
    assert choose_worker_device("auto", cuda_count=0, rank=3) == "cpu"
    assert choose_worker_device("cpu", cuda_count=4, rank=1) == "cpu"
    assert [choose_worker_device("auto", cuda_count=2, rank=r) for r in range(4)] == [
        "cuda:0", "cuda:1", "cuda:0", "cuda:1",
    ]  # fmt: skip
    assert choose_worker_device("cuda", cuda_count=1, rank=5) == "cuda:0"  # Slurm: one GPU per job
    assert choose_worker_device("auto", cuda_count=4, rank=0, pinned="3") == "cuda:3"
    assert choose_worker_device("cuda:1", cuda_count=2, rank=0) == "cuda:1"
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        choose_worker_device("cuda", cuda_count=0, rank=0)
    with pytest.raises(ValueError, match="does not exist"):
        choose_worker_device("cuda:2", cuda_count=2, rank=0)
    with pytest.raises(ValueError, match="EMSR_CUDA_DEVICE"):
        choose_worker_device("auto", cuda_count=2, rank=0, pinned="2")


def test_worker_rank():
    assert worker_rank(0) == 0 and worker_rank(3) == 3
    assert worker_rank("SLURMCluster-12-1") == 1 and worker_rank("gpu-3") == 3
    assert worker_rank("tcp://10.0.0.5:40123") == 0 and worker_rank("main") == 0  # unnamed: its address


def test_parse_scheduler(tmp_path):
    assert parse_scheduler("local:4") == ("local", 4)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    assert parse_scheduler("node12:8786") == ("address", "node12:8786")
    for bad in ("local", "local:0", "local:two", "local:-1", "local:2x"):
        with pytest.raises(ValueError, match="malformed scheduler"):
            parse_scheduler(bad)
    for bad in ("", "somewhere", "tcp:/x"):
        with pytest.raises(ValueError):
            parse_scheduler(bad)
    with pytest.raises(ValueError, match="does not exist"):
        parse_scheduler(str(tmp_path / "scheduler.json"))


def test_unreachable_scheduler_is_a_clear_error(files, tmp_path):
    lr, model, _ = files
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(ValueError, match="cannot reach the dask scheduler at " + address):
        super_resolve_distributed(lr, model, output=tmp_path / "sr.ome.zarr", scheduler=address, connect_timeout=1)
    assert not (tmp_path / "sr.ome.zarr").exists() and not partial_path(tmp_path / "sr.ome.zarr").exists()


def test_missing_extra_names_it(files, tmp_path, monkeypatch):
    lr, model, _ = files
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"napari-emsr\[distributed\]"):
        super_resolve_distributed(lr, model, output=tmp_path / "sr.ome.zarr", scheduler="local:1")


def test_paths_only(files, tmp_path):
    lr, model, reference = files
    with pytest.raises(TypeError, match="give the input's path"):
        super_resolve_distributed(reference, model, output=tmp_path / "sr.ome.zarr")
    with pytest.raises(TypeError, match="give a model file"):
        super_resolve_distributed(lr, sensitive_model(3), output=tmp_path / "sr.ome.zarr")


def test_equals_single_process_and_loads_the_model_once_per_worker(files, client, tmp_path):
    from napari_emsr.predict.chunks import _cached_runner

    lr, model, reference = files
    client.run(_cached_runner.cache_clear)
    target = tmp_path / "sr.ome.zarr"
    events = list(iter_super_resolve_distributed(lr, model, output=target, scheduler=client, **OPTIONS))
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "done"
    plan = events[0].payload
    assert plan.cluster.workers == 2 and plan.device == "cpu" and plan.cluster.scheduler.startswith("tcp://")
    progress = [e.payload.slices_done for e in events if e.kind == "slice"]
    assert progress == list(range(1, 9)) and events[-1].done == events[-1].total > 0
    assert sorted(e.payload.index for e in events if e.kind == "slice") == list(range(8))
    assert all(e.payload.image is None for e in events if e.kind == "slice")  # the workers wrote them
    assert events[-1].payload == target.resolve() and not partial_path(target).exists()
    _assert_same(target, reference)
    loads = client.run(lambda: _cached_runner.cache_info().misses)
    calls = client.run(lambda: _cached_runner.cache_info().hits + _cached_runner.cache_info().misses)
    assert sum(calls.values()) == 8  # one task per slice here (CPU: batch 1)
    assert all(n <= 1 for n in loads.values()) and sum(loads.values()) == sum(1 for n in calls.values() if n)
    assert _cached_runner.cache_info().misses == 0  # the client never ran the network


def test_cuda_on_workers_without_a_gpu_is_refused_before_planning(files, client, tmp_path):
    lr, model, _ = files
    target = tmp_path / "sr.ome.zarr"
    with pytest.raises(ValueError, match="have no usable CUDA GPU .*: pass device='auto' \\(each worker uses its GPU"):
        super_resolve_distributed(lr, model, output=target, scheduler=client, tile=32, overlap=8, device="cuda")
    assert not target.exists() and not partial_path(target).exists()


def test_closed_run_keeps_its_slices_and_resume_completes_it(files, client, tmp_path):
    lr, model, reference = files
    target = tmp_path / "sr.ome.zarr"
    events = iter_super_resolve_distributed(lr, model, output=target, scheduler=client, **OPTIONS)
    for event in events:
        if event.kind == "slice":
            break
    events.close()  # cancels the tasks not yet finished
    assert not target.exists() and partial_path(target).is_dir()
    time.sleep(1.0)  # let a task already running on a worker finish writing (cancel does not stop it)
    assert 1 <= _done_flags(partial_path(target)).sum() < 8
    with pytest.raises(FileExistsError, match="resume"):
        super_resolve_distributed(lr, model, output=target, scheduler=client, **OPTIONS)
    done_before = int(_done_flags(partial_path(target)).sum())
    events = list(iter_super_resolve_distributed(lr, model, output=target, scheduler=client, resume=True, **OPTIONS))
    slices = [e.payload for e in events if e.kind == "slice"]
    assert events[0].payload.slices_reused == done_before and slices[-1].slices_done == 8
    assert len(slices) == 8 - done_before and events[-1].message == "slice 8/8"
    assert events[-1].total == (8 - done_before) * events[0].payload.tiles_per_slice
    _assert_same(target, reference)


def test_a_killed_worker_loses_nothing(files, tmp_path):
    """SIGKILL a worker process mid-task: dask reruns its task, the output is complete and correct."""
    lr, model, reference = files
    target = tmp_path / "sr.ome.zarr"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl:
        with distributed.Client(cl) as client:
            killed = None
            for event in iter_super_resolve_distributed(lr, model, output=target, scheduler=client, **OPTIONS):
                if event.kind == "slice" and killed is None:
                    killed = _kill_a_busy_worker(client)
                    assert not target.exists()
            assert killed is not None and killed not in client.run(os.getpid).values()
    assert event.kind == "done" and not partial_path(target).exists()
    assert _done_flags(target).all()
    _assert_same(target, reference)


def test_a_run_that_fails_on_a_killed_worker_is_completed_by_resume(files, tmp_path):
    """With no retries allowed, a killed worker fails the run; the partial store keeps the slices
    written so far and resume=True completes it."""
    import dask

    lr, model, reference = files
    target = tmp_path / "sr.ome.zarr"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as client:
        with pytest.raises(RuntimeError, match="then rerun: pass resume=True to continue"):
            killed = None
            for event in iter_super_resolve_distributed(lr, model, output=target, scheduler=client, **OPTIONS):
                if event.kind == "slice" and killed is None:
                    killed = _kill_a_busy_worker(client)
        assert not target.exists() and _done_flags(partial_path(target)).sum() < 8
        client.wait_for_workers(2, timeout=60)
        super_resolve_distributed(lr, model, output=target, scheduler=client, resume=True, **OPTIONS)
    assert _done_flags(target).all() and not partial_path(target).exists()
    _assert_same(target, reference)


def test_cli_scheduler_local(files, tmp_path, capsys):
    lr, model, reference = files
    target = tmp_path / "sr.ome.zarr"
    argv = ["predict", str(lr), str(target), "--model", str(model), "--tile", "32", "--overlap", "8"]
    assert main([*argv, "--scheduler", "local:2"]) == 0
    out, err = capsys.readouterr()
    assert "dask cluster" in err and "2 worker(s)" in err and "8 slices" in out
    _assert_same(target, reference)


@pytest.mark.parametrize(
    "scheduler, message",
    [("local:zero", "malformed scheduler"), ("local:0", "malformed scheduler"), ("nowhere", "not a scheduler address")],
)
def test_cli_bad_scheduler(files, tmp_path, capsys, scheduler, message):
    lr, model, _ = files
    argv = ["predict", str(lr), str(tmp_path / "o.ome.zarr"), "--model", str(model), "--scheduler", scheduler]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_unreachable_scheduler_and_tiff_output(files, tmp_path, capsys):
    lr, model, _ = files
    address = f"tcp://127.0.0.1:{_free_port()}"
    argv = ["predict", str(lr), str(tmp_path / "o.ome.zarr"), "--model", str(model), "--scheduler", address]
    assert main([*argv, "--scheduler-timeout", "1"]) == 2
    assert f"cannot reach the dask scheduler at {address}" in capsys.readouterr().err
    argv = ["predict", str(lr), str(tmp_path / "o.ome.tif"), "--model", str(model), "--scheduler", "local:1"]
    assert main(argv) == 2
    assert "writes an OME-Zarr" in capsys.readouterr().err
    argv = ["predict", str(tmp_path / "missing.tif"), str(tmp_path / "o.ome.zarr"), "--scheduler", "local:1"]
    assert main([*argv, "--model", str(model)]) == 2
    assert "missing.tif" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
