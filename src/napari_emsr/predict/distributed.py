"""Super-resolution on a dask.distributed cluster: the units of :mod:`.chunks` as dask tasks.

The client plans the run and creates the partial OME-Zarr (:func:`~.chunks.plan_tasks`); every
unit of slices becomes one dask task (:func:`~.chunks.run_task`, a plain function of a small
picklable :class:`~.chunks.SliceTask`). A worker loads the model once (memoised per process) on
its own GPU when it has one, reads its slices from the input path and writes its own chunks and
done flags into the partial store; the volume never travels to the client. Progress comes from
the cluster, task by task, as futures complete. When every slice is done the client commits the
store under its final name, once.

A worker that dies mid-task loses nothing that was marked done: a slice's done flag is written
after its chunks, dask runs the lost task again elsewhere, and a run that fails anyway keeps its
partial store for ``resume=True``.

``dask.distributed`` is an optional dependency (``pip install 'napari-emsr[distributed]'``),
imported only when a distributed run starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from napari_emsr.device import default_batch, default_tile
from napari_emsr.errors import EMSRError, Hint, HintedValueError
from napari_emsr.events import Clock, Event
from napari_emsr.predict.api import JOB, SliceDone, slice_message
from napari_emsr.predict.chunks import SliceTask, TaskPlan, plan_tasks, run_task
from napari_emsr.predict.options import PredictOptions, build_options
from napari_emsr.predict.plan import ClusterInfo

__all__ = [
    "iter_super_resolve_distributed",
    "super_resolve_distributed",
    "parse_scheduler",
    "connect",
    "local_cluster",
    "choose_worker_device",
    "worker_rank",
    "DISTRIBUTED_EXTRA",
    "WorkersDiedError",
]

#: how to install the optional dependency, quoted in error messages
DISTRIBUTED_EXTRA = "pip install 'napari-emsr[distributed]'"
#: environment variable that pins a worker's CUDA device (an index among the visible devices)
CUDA_DEVICE_ENV = "EMSR_CUDA_DEVICE"

_LOCAL = re.compile(r"local(?::(\d+))?", re.IGNORECASE)
_ADDRESS = re.compile(r"(?:[a-z]+://)?[^\s:/]+:\d{1,5}|[a-z]+://[^\s/]+", re.IGNORECASE)


class WorkersDiedError(EMSRError, RuntimeError):
    """dask workers died repeatedly on a task; the finished slices are kept for resuming."""


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"running on a dask cluster needs dask.distributed, an optional dependency: {DISTRIBUTED_EXTRA}"
        ) from exc
    return distributed


def parse_scheduler(text: str) -> tuple[str, Any]:
    """Parse a ``--scheduler`` value.

    Returns ``("local", n)`` for ``"local:N"`` (a LocalCluster of N worker processes),
    ``("file", path)`` for a scheduler file (``*.json``, as written by ``dask scheduler
    --scheduler-file``) and ``("address", text)`` for a scheduler address such as
    ``tcp://10.0.0.5:8786`` or ``10.0.0.5:8786``. Anything else is a ValueError saying what is
    expected.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the scheduler must be local:N or a scheduler address such as tcp://host:8786")
    text = text.strip()
    if text.lower().startswith("local"):
        match = _LOCAL.fullmatch(text)
        if match is None or match.group(1) is None or int(match.group(1)) < 1:
            raise ValueError(
                f"malformed scheduler {text!r}: write local:N with N >= 1 worker processes (e.g. local:2), "
                "or give a scheduler address such as tcp://host:8786"
            )
        return "local", int(match.group(1))
    if text.lower().endswith(".json"):
        if not Path(text).is_file():
            raise ValueError(f"scheduler file {text} does not exist")
        return "file", str(Path(text).resolve())
    if _ADDRESS.fullmatch(text) is None:
        raise ValueError(
            f"{text!r} is not a scheduler address: use tcp://HOST:PORT (as printed by `dask scheduler`), "
            "HOST:PORT, a scheduler file (*.json) or local:N"
        )
    return "address", text


@contextlib.contextmanager
def connect(scheduler: Any, *, timeout: float = 10.0) -> Iterator[Any]:
    """Return a :class:`distributed.Client` for ``scheduler``, closed (with its LocalCluster) on exit.

    ``scheduler`` is a ``Client`` (used as is, left open), ``"local:N"``, a scheduler address or a
    scheduler file. An unreachable scheduler is a ValueError after ``timeout`` seconds.
    """
    distributed = _import_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    kind, value = parse_scheduler(scheduler)
    if kind == "local":
        cluster = local_cluster(value)
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    where = {"file": {"scheduler_file": value}, "address": {"address": value}}[kind]
    try:
        client = distributed.Client(**where, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"cannot reach the dask scheduler at {value} ({exc}); check the address (tcp://HOST:PORT, as "
            "printed by `dask scheduler`) and that the scheduler is running and reachable from here"
        ) from None
    with client:
        yield client


def local_cluster(workers: int) -> Any:
    """Return the LocalCluster of ``local:N``: N worker processes of one thread (one torch thread) each.

    dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its worker processes to hand memory back to the
    system sooner; that makes glibc map and unmap every large tensor buffer afresh, and PyTorch's
    CPU inference ran about 35 % slower in such workers on this project's benchmark machine. The
    workers of this cluster keep glibc's default instead (their other settings are dask's).
    """
    import dask

    distributed = _import_distributed()
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR,
        )  # fmt: skip


def worker_rank(name: Any) -> int:
    """Return a worker's index on its machine, from its name.

    LocalCluster names workers 0, 1, ...; ``dask worker --nworkers N --name NAME`` and dask-jobqueue
    end the names of one job's worker processes in -0, -1, ... A name that ends in no number, or an
    unnamed worker (named by its address), is rank 0.
    """
    text = str(name)
    match = re.search(r"(\d+)$", text)
    return int(match.group(1)) if match and "://" not in text else 0


def choose_worker_device(requested: str, *, cuda_count: int, rank: int, pinned: str | None = None) -> str:
    """Return the torch device a worker uses (a pure function of what the worker sees).

    Parameters
    ----------
    requested : str
        The run's device: ``"auto"`` (this worker's GPU if it has one, else the CPU), ``"cuda"``
        (this worker's GPU; an error without one), ``"cuda:N"``, ``"cpu"`` or ``"mps"``.
    cuda_count : int
        CUDA devices visible to the worker process.
    rank : int
        The worker's index on its machine (:func:`worker_rank`): with several GPUs visible, worker
        ``rank`` takes GPU ``rank % cuda_count``, so N workers on an N-GPU node use one GPU each.
    pinned : str, optional
        The ``EMSR_CUDA_DEVICE`` environment variable of the worker: a GPU index that wins.
    """
    if requested in ("cpu", "mps"):
        return requested
    if requested.startswith("cuda:"):
        index = int(requested.split(":", 1)[1])
        if index >= cuda_count:
            raise ValueError(f"device {requested!r} does not exist on this worker ({cuda_count} CUDA device(s))")
        return requested
    if requested not in ("auto", "cuda"):
        raise ValueError(f"unknown device {requested!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if cuda_count == 0:
        if requested == "cuda":
            raise ValueError("device 'cuda' was requested but this dask worker has no usable CUDA GPU")
        return "cpu"
    if pinned is not None and pinned != "":
        index = int(pinned)
        if not 0 <= index < cuda_count:
            raise ValueError(f"{CUDA_DEVICE_ENV}={pinned} but this worker sees {cuda_count} CUDA device(s)")
        return f"cuda:{index}"
    return f"cuda:{rank % cuda_count}"


def _this_worker_device(requested: str) -> str:
    import torch

    try:
        from distributed import get_worker

        rank = worker_rank(get_worker().name)
    except (ImportError, ValueError):
        rank = 0
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return choose_worker_device(requested, cuda_count=count, rank=rank, pinned=os.environ.get(CUDA_DEVICE_ENV))


def _run_on_worker(task: SliceTask) -> int:
    """Return the dask task: pick this worker's device, then :func:`run_task` (model memoised per process)."""
    return run_task(replace(task, device=_this_worker_device(task.device)))


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _missing(paths: Sequence[str]) -> list[str]:
    """Return the paths that do not exist (a container's ``FILE.h5:/DATASET`` is checked by its file)."""
    from napari_emsr.io.containers import split_dataset

    return [p for p in paths if not os.path.exists(split_dataset(p)[0])]


def _paths(volume: Any, model: Any, output: Any) -> tuple[str, str, Path]:
    """Absolute paths (workers may run elsewhere, in another folder)."""
    from napari_emsr.model_io import resolve_model_path

    if not isinstance(volume, (str, os.PathLike)):
        raise TypeError(
            "a distributed run reads its input on the workers: give the input's path (a file, folder, glob "
            f"or Zarr on a file system every worker sees), not a {type(volume).__name__}"
        )
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "a distributed run loads the model on every worker: give a model file (save a network with "
            f"napari_emsr.save_model), not a {type(model).__name__}"
        )
    text = os.fspath(volume)
    source = os.path.abspath(text) if any(c in text for c in "*?[") else str(Path(text).resolve())
    if output is None:
        raise ValueError("a distributed run writes an OME-Zarr: give output='NAME.ome.zarr'")
    return source, str(resolve_model_path(model).resolve()), Path(output).resolve()


def _check_inputs(source: str, model_path: str) -> None:
    """Return a missing or unreadable input or model is an error before any cluster starts."""
    from napari_emsr.io import open_volume
    from napari_emsr.model_io import load_model

    open_volume(source).close()
    load_model(model_path)


def _check_workers(client: Any, task: SliceTask) -> dict[str, int]:
    """CUDA devices per worker; a ValueError if a worker does not see the input, model or store."""
    needed = [task.model, task.store] + ([task.source] if isinstance(task.source, str) else [])
    needed = [p for p in needed if not any(c in p for c in "*?[")]
    missing = {addr: paths for addr, paths in client.run(_missing, needed).items() if paths}
    if missing:
        addr, paths = next(iter(missing.items()))
        raise ValueError(
            f"dask worker {addr} cannot see {', '.join(paths)} ({len(missing)} worker(s) affected): the input, "
            "the model and the output folder must be on a file system shared by every worker"
        )
    return client.run(_cuda_count)


def iter_super_resolve_distributed(
    volume: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    output: str | os.PathLike,
    scheduler: Any = "local:1",
    options: PredictOptions | None = None,
    connect_timeout: float = 10.0,
    **keywords: Any,
) -> Iterator[Event]:
    """Super-resolve a volume file into an OME-Zarr on a dask cluster, yielding :class:`~napari_emsr.events.Event`.

    ``options`` (and ``keywords``, fields of :class:`~napari_emsr.predict.options.PredictOptions`)
    are those of :func:`napari_emsr.iter_super_resolve`, with these differences: ``volume`` and
    ``model`` are paths that every worker sees (None: the shipped default model), ``output`` is a
    ``*.ome.zarr`` in a folder every worker sees, ``first_slice`` does not apply, and ``device``
    is chosen by each worker for itself (``"auto"``: its own GPU if it has one, else the CPU; see
    :func:`choose_worker_device`). When ``tile`` / ``batch`` are not given, the GPU defaults apply
    if every worker has a GPU, else the CPU defaults.

    ``scheduler``: ``"local:N"`` (a LocalCluster of N single-threaded worker processes, closed at
    the end), a scheduler address (``tcp://host:8786``), a scheduler file, or a
    :class:`distributed.Client` (left open).

    Events (job ``"predict"``, counted in tiles): ``"start"`` (a
    :class:`~napari_emsr.predict.plan.PlanSummary` whose ``cluster`` is set), one ``"slice"`` per
    slice of each task finished on the cluster (a :class:`~napari_emsr.predict.api.SliceDone`
    without an image: the workers wrote it), ``"done"`` with the path written. Closing the
    generator cancels the tasks not yet finished; the partial store is kept for ``resume=True``.
    """
    options = build_options(options, **keywords)
    if options.tile == "auto":
        raise ValueError(
            "tile 'auto' times the network on the device that plans the run, not on the workers: give a distributed "
            "run a tile size (e.g. the one `emsr predict --tile auto` chose on a worker's kind of device)"
        )
    distributed = _import_distributed()
    source, model_path, target = _paths(volume, model, output)
    spec = str(options.device)
    _check_inputs(source, model_path)
    with connect(scheduler, timeout=connect_timeout) as client:
        gpus = client.run(_cuda_count)
        without = [addr for addr, count in gpus.items() if count == 0]
        if spec.startswith("cuda") and without:
            raise HintedValueError(
                f"device {spec!r} was requested but {len(without)} of {len(gpus)} dask worker(s) have no usable "
                f"CUDA GPU (e.g. {without[0]})",
                Hint("device", "auto", "(each worker uses its GPU if it has one)"),
            )
        on_gpu = bool(gpus) and all(gpus.values()) and spec != "cpu"
        kind = torch.device("cuda" if on_gpu else "cpu")  # the workers' kind of device, for the defaults
        planning = options.replace(
            tile=options.tile if isinstance(options.tile, int) else default_tile(kind),
            batch=options.batch if options.batch is not None else default_batch(kind),
            device="cpu",  # the client plans on its CPU; each worker picks its own device
        )
        planned = plan_tasks(source, model_path, target, planning)
        tasks = [replace(task, device=spec) for task in planned.tasks]
        if tasks:
            gpus = _check_workers(client, tasks[0])
        dashboard = client.dashboard_link if _has_bokeh() else None
        cluster = ClusterInfo(str(client.scheduler.address), len(gpus), sum(gpus.values()), dashboard)
        summary = replace(planned.summary, device=spec, cluster=cluster)
        yield from _run(distributed, client, tasks, replace(planned, summary=summary))


def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


def _run(distributed: Any, client: Any, tasks: list[SliceTask], planned: TaskPlan) -> Iterator[Event]:
    clock, summary = Clock(), planned.summary
    per_slice, slices_total = summary.tiles_per_slice, summary.slices_total
    slices_done = summary.slices_reused
    total, done = sum(len(t.slices) for t in tasks) * per_slice, 0

    def event(kind: str, payload: Any = None) -> Event:
        eta = 0.0 if kind == "done" else clock.eta(done, total)
        message = slice_message(slices_done, slices_total)
        return Event(JOB, kind, done, total, "tile", eta, clock.elapsed(), message, payload)

    yield event("start", summary)
    token = uuid.uuid4().hex[:8]
    keys = [f"emsr-predict-{token}-{i}" for i in range(len(tasks))]
    futures = client.map(_run_on_worker, tasks, key=keys, pure=False) if tasks else []
    task_of = {future.key: task for future, task in zip(futures, tasks, strict=True)}
    try:
        for future in distributed.as_completed(futures):
            future.result()  # re-raises a task's error (or KilledWorker) here
            task = task_of[future.key]
            future.release()
            for z in task.slices:
                done += per_slice
                slices_done += 1
                yield event("slice", SliceDone(z, None, slices_done, slices_total))
        result = planned.writer.commit()
    except distributed.KilledWorker as exc:
        client.cancel(futures)
        raise WorkersDiedError(
            f"dask workers died repeatedly while running a task ({exc}); the finished slices are kept in "
            f"{Path(tasks[0].store)}. Fix the cause (often memory), then rerun",
            Hint("resume", True, "to continue"),
        ) from exc
    except BaseException:
        client.cancel(futures)
        raise
    yield event("done", result)


def super_resolve_distributed(
    volume: str | os.PathLike, model: Any = None, *, options: PredictOptions | None = None, **keywords: Any
) -> Path:
    """Run :func:`iter_super_resolve_distributed` to the end; returns the path written.

    ``keywords``: ``output``, ``scheduler``, ``connect_timeout`` and the fields of
    :class:`~napari_emsr.predict.options.PredictOptions`.
    """
    result = None
    for event in iter_super_resolve_distributed(volume, model, options=options, **keywords):
        if event.kind == "done":
            result = event.payload
    if result is None:  # the generator always ends with "done" unless it raised
        raise RuntimeError("the distributed run ended without a result")
    return Path(result)
