"""Units of work: groups of slices that are read, predicted and written together.

A unit is a few consecutive slices (enough to fill a batch when slices are small, one when they are
large): memory is bounded by one unit, whatever the number of slices. The same unit is the task of
a distributed run: :func:`prepare_tasks` makes a resumable OME-Zarr and one picklable
:class:`SliceTask` per unit that is not done yet; :func:`run_task` is a plain function (run it with
``dask.delayed``, ``client.map``, a process pool, ...) that loads the model once per process, reads
its slices from the input path, predicts them and writes them into the store. Then
``writer.commit()`` renames the store into place.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from napari_emsr.predict.engine import Geometry, ModelRunner, predict_block, prepare_model
from napari_emsr.predict.intensity import IntensityMap
from napari_emsr.predict.options import PredictOptions, build_options
from napari_emsr.predict.slabs import UNIT_BYTES, SlabReader, read_block

if TYPE_CHECKING:
    from napari_emsr.predict.plan import PlanSummary

__all__ = [
    "plan_units", "SlabReader", "SliceTask", "TaskPlan", "run_task", "prepare_tasks", "plan_tasks", "read_block",
    "UNIT_BYTES",
]  # fmt: skip


def plan_units(
    slices: Sequence[int | None], *, per_unit: int, first: int | None = None, done: np.ndarray | None = None
) -> list[tuple[int | None, ...]]:
    """Group the slices still to do into runs of at most ``per_unit`` consecutive slices.

    ``first`` moves the unit holding that slice to the front (for a quick preview of it).
    """
    todo = [z for z in slices if done is None or not done[0 if z is None else z]]
    units: list[list[int | None]] = []
    for z in todo:
        if units and len(units[-1]) < per_unit and z is not None and units[-1][-1] == z - 1:
            units[-1].append(z)
        else:
            units.append([z])
    if first is not None:
        units.sort(key=lambda unit: first not in unit)
    return [tuple(unit) for unit in units]


def slices_per_unit(tiles_per_slice: int, batch: int, out_slice_bytes: int) -> int:
    """Enough slices to fill a batch of tiles, within the :data:`UNIT_BYTES` budget."""
    wanted = max(1, math.ceil(batch / max(1, tiles_per_slice)))
    return max(1, min(wanted, UNIT_BYTES // max(1, 2 * out_slice_bytes)))


@dataclass(frozen=True)
class SliceTask:
    """One independent unit of work of a distributed run (picklable).

    ``source`` and ``model`` are paths (each process opens / loads them once and caches them) or
    in-memory objects; ``store`` is the partial OME-Zarr that :func:`prepare_tasks` created.
    """

    slices: tuple[int | None, ...]
    source: Any
    model: Any
    store: str
    device: str
    batch: int
    geometry: Geometry
    intensity: IntensityMap
    self_ensemble: bool
    block: tuple[slice, slice]
    crop: tuple[slice, slice] | None
    precision: str = "auto"  # as asked: each worker resolves it for its own device


def _runner(model: Any, device: str, batch: int, precision: str) -> ModelRunner:

    from napari_emsr.device import resolve_precision, select_device

    resolved = select_device(device)
    return ModelRunner(prepare_model(model, resolved), resolved, batch, resolve_precision(precision, resolved)[0])


@functools.lru_cache(maxsize=2)
def _cached_runner(model_path: str, device: str, batch: int, precision: str = "auto") -> ModelRunner:
    """One model per (process, file, device, precision): a dask worker loads it for its first task only."""
    from napari_emsr.model_io import load_model

    return _runner(load_model(model_path), device, batch, precision)


@functools.lru_cache(maxsize=2)
def _cached_source(path: str) -> Any:
    from napari_emsr.io.readers import open_volume

    return open_volume(path).data


def run_task(task: SliceTask) -> int:
    """Predict and write one unit; returns the number of slices written.

    Pure in its effects: it writes only its own slices' chunks and done flags, so tasks can run in
    any order, in parallel, and again after a failure.
    """
    from napari_emsr.io.writers import write_zarr_slice

    if isinstance(task.model, str):
        runner = _cached_runner(task.model, task.device, task.batch, task.precision)
    else:
        runner = _runner(task.model, task.device, task.batch, task.precision)
    data = _cached_source(task.source) if isinstance(task.source, str) else task.source
    raw = read_block(data, task.slices, task.block)
    where = "the input" if task.slices == (None,) else f"slices {task.slices[0]}..{task.slices[-1]} of the input"
    blocks = predict_block(
        raw, runner, task.geometry, task.intensity, self_ensemble=task.self_ensemble, crop=task.crop, where=where
    )
    out = _exhaust(blocks)
    for z, plane in zip(task.slices, out, strict=True):
        write_zarr_slice(task.store, z, plane)
    return len(task.slices)


def _exhaust(generator: Any) -> Any:
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


@dataclass(frozen=True)
class TaskPlan:
    """What :func:`plan_tasks` prepared: the tasks still to run, the writer, and the run's summary."""

    tasks: list[SliceTask]
    writer: Any
    done: np.ndarray
    summary: PlanSummary

    @property
    def tiles_per_slice(self) -> int:
        """Return the forward-pass tiles per output slice."""
        return self.summary.tiles_per_slice

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Return the shape of the whole output."""
        return self.summary.output_shape


def prepare_tasks(
    volume: Any, model: Any, output: Any, *, options: PredictOptions | None = None, **keywords: Any
) -> tuple[list[SliceTask], Any]:
    """Plan a distributed run into an OME-Zarr ``output``: ``(tasks, writer)``.

    ``volume`` and ``model`` should be paths, so that tasks stay small and each worker opens them
    itself. ``options`` (and ``keywords``, fields of
    :class:`~napari_emsr.predict.options.PredictOptions`) are those of
    :func:`napari_emsr.iter_super_resolve`. Run :func:`run_task` on every task (in any order,
    anywhere that sees the paths), then call ``writer.commit()``; with ``resume=True`` only the
    slices not yet done become tasks.
    """
    planned = plan_tasks(volume, model, output, build_options(options, **keywords))
    return planned.tasks, planned.writer


def plan_tasks(volume: Any, model: Any, output: Any, options: PredictOptions) -> TaskPlan:
    """:func:`prepare_tasks`, also returning the done mask and the run's summary (for progress)."""
    from napari_emsr.io.writers import OmeZarrWriter, output_kind, partial_path
    from napari_emsr.predict.plan import make_plan

    if output_kind(output) != "ome-zarr":
        raise ValueError(f"{output}: a distributed run writes an OME-Zarr; name the output *.ome.zarr")
    if options.first_slice is not None:
        raise ValueError("first_slice has no effect on a run of independent tasks: leave it out")
    plan = make_plan(volume, model, options)
    try:
        writer = OmeZarrWriter(
            output, shape=plan.out_shape, dtype=plan.out_dtype, multiscale=plan.multiscale,
            fingerprint=plan.resume_fingerprint(), overwrite=options.overwrite, resume=options.resume,
            pyramid=options.pyramid,
        )  # fmt: skip
        done = writer.open()
        out_bytes = int(np.prod(plan.out_shape[-2:])) * 4
        per_unit = slices_per_unit(plan.tiles_per_slice(), plan.batch, out_bytes)
        units = plan_units(plan.slices, per_unit=per_unit, done=done)
        source = str(plan.volume.path) if plan.volume.path is not None and plan.owned else plan.volume.data
        common: dict[str, Any] = dict(
            source=source, model=plan.model_source or model, store=str(partial_path(output)), device=str(plan.device),
            batch=plan.batch, geometry=plan.geometry, intensity=plan.intensity, self_ensemble=plan.self_ensemble,
            block=plan.block, crop=plan.crop, precision=options.precision,
        )  # fmt: skip
        tasks = [SliceTask(slices=unit, **common) for unit in units]
        return TaskPlan(tasks, writer, done, plan.summary(slices_reused=int(done.sum())))
    finally:
        plan.close()
