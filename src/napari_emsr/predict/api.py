"""Public prediction API: a generator that yields progress, and a function that runs it to the end.

A GUI drives :func:`iter_super_resolve` from a worker thread (e.g. napari's ``thread_worker``):
every event can update a progress bar; closing the generator (``worker.quit()``) stops the run
between two forward passes, and the output file, if any, is not left looking complete.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterator, Sequence

import numpy as np
import torch

from napari_emsr.predict.chunks import SlabReader, plan_units, slices_per_unit
from napari_emsr.predict.engine import ModelRunner, OutOfMemoryWarning, TileOutOfMemory, predict_block
from napari_emsr.predict.plan import Plan, make_plan

__all__ = ["Progress", "iter_super_resolve", "super_resolve"]


@dataclass(frozen=True)
class Progress:
    """One progress event of :func:`iter_super_resolve`.

    Attributes
    ----------
    stage : str
        ``"start"`` (before the first tile; ``plan`` is set), ``"tiles"`` (after a forward pass),
        ``"slice"`` (a slice is finished; ``slice_index`` and ``preview`` are set) or ``"done"``
        (everything is written; ``result`` is set).
    done, total : int
        Tiles finished and to do in this run (with self-ensemble each tile counts 8 times; slices
        done by an interrupted run that is resumed are not counted). ``total`` can grow if an
        out-of-memory error forces smaller tiles.
    eta : float or None
        Estimated seconds left (None before the first forward pass).
    elapsed : float
        Seconds since the run started.
    slices_done, slices_total : int
        Output slices finished (resumed ones included) and in all (1 for a 2D image).
    output_shape : tuple of int
        Shape of the whole output.
    slice_index : int or None
        Index (z) of the slice just finished (``"slice"`` events of a stack).
    preview : numpy.ndarray or None
        That slice's output, ready to display (``"slice"`` events).
    plan : dict or None
        What the run does (device, tile, halo, exact, batch, intensities, pixel sizes, ...), and
        ``slices_reused``: the slices an interrupted run finished that a resumed one reuses.
    result : numpy.ndarray, Path or None
        The output array (in-memory run) or the written path (``"done"``).
    """

    stage: str
    done: int
    total: int
    eta: float | None
    elapsed: float
    slices_done: int
    slices_total: int
    output_shape: tuple[int, ...]
    slice_index: int | None = None
    preview: np.ndarray | None = None
    plan: dict[str, Any] | None = None
    result: Any = None

    @property
    def fraction(self) -> float:
        """Share of the tiles done, 0..1."""
        return self.done / self.total if self.total else 1.0


class _ArrayWriter:
    """The in-memory 'writer': fills a numpy array."""

    kind = "array"
    already_complete = False

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.array = np.zeros(shape, dtype=dtype)

    def open(self) -> np.ndarray:
        return np.zeros(self.array.shape[0] if self.array.ndim == 3 else 1, dtype=bool)

    def write(self, index: int | None, plane: np.ndarray) -> None:
        if index is None:
            self.array[...] = plane
        else:
            self.array[index] = plane

    def commit(self) -> np.ndarray:
        return self.array

    def abort(self) -> None:
        self.array = None  # type: ignore[assignment]  # dropped: the aborted result is never returned


def _writer(plan: Plan, output: Any, *, overwrite: bool, resume: bool, first_slice: int | None):
    if output is None:
        if resume:
            raise ValueError("resume needs an output file (an OME-Zarr) to resume")
        return _ArrayWriter(plan.out_shape, plan.out_dtype)
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"output must be a path (.ome.tif or .ome.zarr) or None, got {type(output).__name__}")
    from napari_emsr.io.writers import open_writer, output_kind

    if output_kind(output) == "ome-tiff" and first_slice not in (None, 0):
        raise ValueError(
            "an OME-TIFF is written slice by slice in order: use first_slice with an OME-Zarr or in-memory output"
        )
    if plan.volume.path is not None and Path(output).resolve() == plan.volume.path.resolve():
        raise ValueError(f"{output} is the input; write the output to another path")
    # a resumable output records what the input held, so that a changed input is not resumed into it
    fingerprint = plan.resume_fingerprint() if output_kind(output) == "ome-zarr" else plan.fingerprint
    return open_writer(
        output, shape=plan.out_shape, dtype=plan.out_dtype, pixel_size_nm=plan.out_pixel_size,
        multiscale=plan.multiscale, fingerprint=fingerprint, overwrite=overwrite, resume=resume,
    )  # fmt: skip


class _Clock:
    """Elapsed time and an ETA from the rate of this run's forward passes."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self, done: int, total: int) -> float | None:
        return (total - done) * self.elapsed() / done if done > 0 else None


def iter_super_resolve(
    volume: Any,
    model: Any = None,
    *,
    output: str | os.PathLike | None = None,
    tile: int | None = None,
    overlap: int | str | None = None,
    blend: int | None = None,
    batch: int | None = None,
    device: str | torch.device | None = "auto",
    pixel_size: float | Sequence[float] | None = None,
    self_ensemble: bool = False,
    intensity_range: Sequence[float] | None = None,
    region: Any = None,
    first_slice: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Generator[Progress, None, None]:
    """Super-resolve an image or a stack slice by slice, yielding :class:`Progress` events.

    Parameters
    ----------
    volume : path, Volume, dask array or array-like
        (z, y, x) stack or (y, x) image; a path is opened with :func:`napari_emsr.open_volume`.
        Lazily sliced dask arrays work too (e.g. ``data[z]`` for one slice of a large stack).
    model : EMSR, path or None
        A network (it is copied, never modified) or a model file; None: the pretrained default
        model shipped with napari-emsr.
    output : path, optional
        ``*.ome.tif`` / ``*.ome.tiff`` / ``*.tif`` or ``*.ome.zarr`` / ``*.zarr``, written slice by
        slice under a temporary name and renamed when complete. None: the result is an array.
    tile : int, optional
        Core size of a tile in input pixels (snapped up to the attention window); default 256 on
        the CPU, 1024 on a GPU. The network sees tile + 2 x (halo + blend) pixels per tile.
    overlap : int, "auto" or "exact", optional
        The halo: context every output pixel has on each side, in input pixels (rounded up to the
        window). Default ``"auto"``: the network's effective receptive radius measured on this
        input (see :mod:`napari_emsr.predict.halo`; tiled output within about a quarter grey level
        of whole-slice output, at a fraction of the cost). ``"exact"``: the theoretical receptive
        radius, so tiled == whole-slice output up to float rounding. A number: that many pixels.
    blend : int, optional
        Half-width of the cross-fade between neighbouring tiles (default 2 attention windows).
    batch : int, optional
        Tiles per forward pass (default 1 on the CPU, 4 on a GPU); halved on out-of-memory errors,
        then the tile is halved.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    pixel_size : float or sequence of float, optional
        Input pixel size in nm (one number for y and x, or one per axis), overriding the file's.
    self_ensemble : bool
        Average the predictions of the 8 flips / rotations (8 x slower).
    intensity_range : (float, float), optional
        Raw intensities mapped to the network's 0 and 1, overriding the model's normalisation.
    region : (slice, slice), optional
        Only this (rows, columns) region of every slice, predicted with context read around it
        (identical to the same region of a whole-slice prediction).
    first_slice : int, optional
        Predict the unit holding this slice first, e.g. the slice on screen as a preview.
    resume : bool
        Continue an interrupted OME-Zarr run (same input, model and options; the input's content
        is compared too, by a digest of sampled slices recorded when the run started).
    overwrite : bool
        Replace an existing output (only once the new one is complete).

    Yields
    ------
    Progress
        ``"start"``, then ``"tiles"`` after each forward pass and ``"slice"`` as slices finish,
        then ``"done"`` with the result.
    """
    plan = make_plan(
        volume, model, tile=tile, overlap=overlap, blend=blend, batch=batch, device=device, pixel_size=pixel_size,
        self_ensemble=self_ensemble, intensity_range=intensity_range, region=region,
    )  # fmt: skip
    try:
        if first_slice is not None and (plan.volume.ndim != 3 or not 0 <= first_slice < plan.volume.shape[0]):
            raise ValueError(f"first_slice {first_slice} is not a slice of the input (shape {plan.volume.shape})")
        writer = _writer(plan, output, overwrite=overwrite, resume=resume, first_slice=first_slice)
        yield from _run(plan, writer, first_slice)
    finally:
        plan.close()


def _run(plan: Plan, writer: Any, first_slice: int | None) -> Iterator[Progress]:
    try:
        done_mask = writer.open()
        state = _State(plan, done_mask)
        yield state.event("start", plan={**plan.summary(), "slices_reused": state.slices_done})
        per_unit = slices_per_unit(plan.tiles_per_slice(), plan.batch, int(np.prod(plan.out_shape[-2:])) * 4)
        reader = SlabReader(plan.volume.data, plan.block)
        runner = ModelRunner(plan.model, plan.device, plan.batch)
        for unit in plan_units(plan.slices, per_unit=per_unit, first=first_slice, done=done_mask):
            out = yield from _run_unit(plan, runner, reader.read(unit), unit, state)
            for z, plane in zip(unit, out, strict=True):
                writer.write(z, plane)
                state.slices_done += 1
                yield state.event("slice", slice_index=z, preview=plane)
        result = writer.commit()
    except BaseException as exc:
        writer.abort()  # nothing is left under the output's name; a temporary file is removed
        no_room = _space_error(exc, writer)
        if no_room is not None:
            raise no_room from exc
        raise
    yield state.event("done", result=result)


def _space_error(exc: BaseException, writer: Any) -> Exception | None:
    if getattr(writer, "kind", "array") == "array":
        return None
    from napari_emsr.io.writers import space_error

    return space_error(exc, writer)


class _State:
    """Counters of a run, and the events built from them."""

    def __init__(self, plan: Plan, done_mask: np.ndarray) -> None:
        self.plan, self.clock = plan, _Clock()
        self.slices_done = int(done_mask.sum())
        self.slices_total = len(done_mask)
        self.done = 0
        self.total = (self.slices_total - self.slices_done) * plan.tiles_per_slice()

    def event(self, stage: str, **extra: Any) -> Progress:
        eta = 0.0 if stage == "done" else self.clock.eta(self.done, self.total)
        return Progress(
            stage, self.done, self.total, eta, self.clock.elapsed(), self.slices_done, self.slices_total,
            tuple(self.plan.out_shape), **extra,
        )  # fmt: skip


def _run_unit(plan: Plan, runner: ModelRunner, raw: np.ndarray, unit: tuple, state: _State):
    """Predict one unit, yielding 'tiles' events; on out-of-memory with one tile, halve the tile."""
    if unit == (None,):
        where = "the input"
    else:
        where = f"slice {unit[0]}" if len(unit) == 1 else f"slices {unit[0]}..{unit[-1]}"
    while True:
        started = state.done
        blocks = predict_block(
            raw, runner, plan.geometry, plan.intensity, self_ensemble=plan.self_ensemble, crop=plan.crop, where=where
        )
        try:
            while True:
                try:
                    state.done += next(blocks)
                except StopIteration as stop:
                    return stop.value
                yield state.event("tiles")
        except TileOutOfMemory as exc:
            _shrink(plan, state, started, exc)


def _shrink(plan: Plan, state: _State, started: int, exc: Exception) -> None:
    """Halve the tile after an out-of-memory error with one tile per pass, and recount the work."""
    smaller = plan.geometry.halved()
    if smaller.tile == plan.geometry.tile:
        raise MemoryError(
            f"out of memory on {plan.device} even with one {plan.geometry.tile}-pixel tile per pass: use "
            "--device cpu, a smaller --overlap, or free memory on the device"
        ) from exc
    plan.geometry = smaller
    remaining = state.slices_total - state.slices_done  # the unit that failed is not done yet
    state.done = started
    state.total = started + remaining * plan.tiles_per_slice()
    warnings.warn(
        f"out of memory on {plan.device} with one tile per pass: continuing with tile {smaller.tile}",
        OutOfMemoryWarning,
        stacklevel=2,
    )


def super_resolve(volume: Any, model: Any = None, **options: Any) -> Any:
    """Run :func:`iter_super_resolve` to the end.

    Returns the output array (a (z, y, x) or (y, x) numpy array in the input's dtype) when no
    ``output`` is given, otherwise the :class:`~pathlib.Path` written.
    """
    result = None
    for event in iter_super_resolve(volume, model, **options):
        if event.stage == "done":
            result = event.result
    return result
