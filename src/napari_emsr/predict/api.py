"""Public prediction API: a generator of progress events, and a function that runs it to the end.

A GUI drives :func:`iter_super_resolve` from a worker thread (e.g. napari's ``thread_worker``):
every event can update a progress bar; closing the generator (``worker.quit()``) stops the run
between two forward passes, and the output file, if any, is not left looking complete.

The events are :class:`napari_emsr.events.Event` objects of job ``"predict"``, counted in tiles
(forward-pass tiles; with self-ensemble each tile counts 8 times; slices reused by a resumed run
are not counted). Their kinds and payloads:

- ``"start"`` (before the first tile): a :class:`~napari_emsr.predict.plan.PlanSummary`, slices
  reused by a resumed run included;
- ``"tiles"`` (after a forward pass): no payload;
- ``"slice"`` (a slice is finished and written): a :class:`SliceDone`;
- ``"done"`` (everything is written): the result, the output array or the written path; with an
  uncertainty map, the pair ``(result, uncertainty result)``.

The ``message`` of every event of a stack says how many slices are finished (``"slice 3/10"``).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterator

import numpy as np

from napari_emsr.errors import Hint, HintedMemoryError
from napari_emsr.events import Clock, Event
from napari_emsr.predict.chunks import SlabReader, plan_units, slices_per_unit
from napari_emsr.predict.engine import Geometry, ModelRunner, OutOfMemoryWarning, TileOutOfMemory, predict_block
from napari_emsr.predict.options import PredictOptions, build_options
from napari_emsr.predict.plan import Plan, make_plan

__all__ = ["SliceDone", "ArrayWriter", "PairWriter", "iter_super_resolve", "super_resolve", "space_error_of", "JOB"]

#: the ``job`` of a prediction's events
JOB = "predict"


@dataclass(frozen=True)
class SliceDone:
    """The payload of a ``"slice"`` event: one output slice is finished.

    Attributes
    ----------
    index : int or None
        The slice's index (z) in the output; None for a 2D image.
    image : numpy.ndarray or None
        The slice's output, ready to display (None in a distributed run: the workers wrote it).
    slices_done, slices_total : int
        Output slices finished (resumed ones included) and in all (1 for a 2D image).
    spread : numpy.ndarray or None
        With an uncertainty map: the slice's per-pixel standard deviation of the 8-fold
        self-ensemble (float32, output intensity units); otherwise None.
    """

    index: int | None
    image: np.ndarray | None
    slices_done: int
    slices_total: int
    spread: np.ndarray | None = None


def slice_message(slices_done: int, slices_total: int) -> str:
    """Return the ``message`` of a prediction's events: ``"slice 3/10"`` for a stack, empty for an image."""
    return f"slice {slices_done}/{slices_total}" if slices_total > 1 else ""


class ArrayWriter:
    """The in-memory 'writer': fills a numpy array."""

    kind = "array"
    already_complete = False

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        try:
            self.array = np.zeros(shape, dtype=dtype)
        except MemoryError:
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize / 2**30
            raise HintedMemoryError(
                f"the result, {shape} {np.dtype(dtype).name} ({size:.1f} GiB), does not fit in memory",
                Hint("output", "PATH", "to write it to disk slice by slice"),
                Hint("region", "(ROWS, COLUMNS)", "to predict only a part of each slice"),
            ) from None

    def open(self) -> np.ndarray:
        """Return the done flags: none is done."""
        return np.zeros(self.array.shape[0] if self.array.ndim == 3 else 1, dtype=bool)

    def write(self, index: int | None, plane: np.ndarray) -> None:
        """Put a slice (``index``) or the whole image (None) in the array."""
        if index is None:
            self.array[...] = plane
        else:
            self.array[index] = plane

    def commit(self) -> np.ndarray:
        """Return the finished array."""
        return self.array

    def abort(self) -> None:
        """Drop the array."""
        self.array = None  # type: ignore[assignment]  # dropped: the aborted result is never returned


#: the dtype of an uncertainty map (a standard deviation in output intensity units)
SPREAD_DTYPE = np.dtype(np.float32)


def _writer(plan: Plan, output: Any, options: PredictOptions, *, dtype: Any = None, what: str = "output",
            marks: dict[str, Any] | None = None, fingerprints: dict[str, Any] | None = None):  # fmt: skip
    overwrite, resume, first_slice = options.overwrite, options.resume, options.first_slice
    dtype = plan.out_dtype if dtype is None else dtype
    if output is None:
        if resume:
            raise ValueError(f"resume needs an {what} file (an OME-Zarr) to resume")
        return ArrayWriter(plan.out_shape, dtype)
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (.ome.tif or .ome.zarr) or None, got {type(output).__name__}")
    from napari_emsr.io.writers import open_writer, output_kind

    if output_kind(output) == "ome-tiff" and first_slice not in (None, 0):
        raise ValueError(
            "an OME-TIFF is written slice by slice in order: use first_slice with an OME-Zarr or in-memory output"
        )
    if plan.volume.path is not None and Path(output).resolve() == plan.volume.path.resolve():
        raise ValueError(f"{output} is the input; write the {what} to another path")
    # a resumable output records what the input held, so that a changed input is not resumed into it
    kind = output_kind(output)
    fingerprints = {} if fingerprints is None else fingerprints  # made once per run (the digest reads the input)
    if kind not in fingerprints:
        fingerprints[kind] = plan.resume_fingerprint() if kind == "ome-zarr" else plan.fingerprint
    fingerprint = fingerprints[kind]
    return open_writer(
        output, shape=plan.out_shape, dtype=dtype, pixel_size_nm=plan.out_pixel_size,
        multiscale=plan.multiscale, fingerprint={**fingerprint, **(marks or {})}, overwrite=overwrite,
        resume=resume, pyramid=options.pyramid,
    )  # fmt: skip


class PairWriter:
    """Writes the result and its uncertainty map together: one done mask, both committed or neither kept.

    A slice counts as done only when it is done in both (a run killed between the two writes of a
    slice computes it again). ``write`` takes ``(image, spread)`` per slice; ``commit`` returns
    ``(result, uncertainty result)``.
    """

    def __init__(self, main: Any, spread: Any) -> None:
        self.main, self.spread = main, spread
        files = [w for w in (main, spread) if getattr(w, "kind", "array") != "array"]
        self.kind = "array" if not files else "pair"
        self.path = getattr(files[0], "path", None) if files else None
        self._files = files
        self.already_complete = bool(getattr(main, "already_complete", False)) and bool(
            getattr(spread, "already_complete", False)
        )

    def open(self) -> np.ndarray:
        """Open both; return the slices done in both."""
        for finished, other, what in ((self.main, self.spread, "result"), (self.spread, self.main, "uncertainty map")):
            if getattr(finished, "already_complete", False) and not getattr(other, "already_complete", False):
                raise ValueError(
                    f"the {what} {finished.path} is already complete and would not be written again: to make both, "
                    "write them to new paths, or pass overwrite=True to replace both"
                )
        done = self.main.open()
        return done & self.spread.open()

    def write(self, index: int | None, pair: tuple[np.ndarray, np.ndarray]) -> None:
        """Write a slice's (image, spread)."""
        self.spread.write(index, pair[1])
        self.main.write(index, pair[0])

    def commit(self) -> tuple[Any, Any]:
        """Commit the uncertainty map, then the result; return both."""
        spread = self.spread.commit()
        return self.main.commit(), spread

    def abort(self) -> None:
        """Abort both (each keeps what it keeps on its own: a partial OME-Zarr, nothing of a TIFF)."""
        try:
            self.main.abort()
        finally:
            self.spread.abort()

    def estimated_bytes(self) -> tuple[int, bool]:
        """Return the bytes both files take (and whether that is exact)."""
        sizes = [w.estimated_bytes() for w in self._files if hasattr(w, "estimated_bytes")]
        return sum(n for n, _ in sizes), all(exact for _, exact in sizes)

    def kept(self) -> tuple[Path | None, int]:
        """Return the result's partial store (or the map's, for an in-memory result) and its slices done."""
        for w in self._files:
            if hasattr(w, "kept"):
                return w.kept()
        return None, 0


def _writers(plan: Plan, output: Any, uncertainty: Any, options: PredictOptions):
    """Return the run's writer: the result's, or a :class:`PairWriter` with the uncertainty map's."""
    if uncertainty is None or uncertainty is False:
        return _writer(plan, output, options)
    if uncertainty is True:
        if output is not None:
            raise ValueError(
                "uncertainty=True keeps the map in memory, with an in-memory result: with an output file, "
                "give the uncertainty map its own path"
            )
        target = None
    else:
        target = uncertainty
        if output is not None and isinstance(target, (str, os.PathLike)) and isinstance(output, (str, os.PathLike)):
            if Path(target).resolve() == Path(output).resolve():
                raise ValueError(f"{target} is also the output; give the uncertainty map another path")
    made: dict[str, Any] = {}
    spread = _writer(plan, target, options, dtype=SPREAD_DTYPE, what="uncertainty map",
                     marks={"uncertainty": "self-ensemble standard deviation"}, fingerprints=made)  # fmt: skip
    return PairWriter(_writer(plan, output, options, fingerprints=made), spread)


def iter_super_resolve(
    volume: Any,
    model: Any = None,
    *,
    output: str | os.PathLike | None = None,
    uncertainty: bool | str | os.PathLike | None = None,
    options: PredictOptions | None = None,
    **keywords: Any,
) -> Generator[Event, None, None]:
    """Super-resolve an image or a stack slice by slice, yielding :class:`~napari_emsr.events.Event` objects.

    Parameters
    ----------
    volume : path, Volume, dask array or array-like
        (z, y, x) stack or (y, x) image; a path is opened with :func:`napari_emsr.open_volume`.
        Lazily sliced dask arrays work too (e.g. ``data[z]`` for one slice of a large stack).
    model : EMSR, path or None
        A network (it is copied, never modified), a model file or a zoo name; None: the pretrained
        default model shipped with napari-emsr.
    output : path, optional
        ``*.ome.tif`` / ``*.ome.tiff`` / ``*.tif`` or ``*.ome.zarr`` / ``*.zarr``, written slice by
        slice under a temporary name and renamed when complete. None: the result is an array.
    uncertainty : bool or path, optional
        Also make an uncertainty map: per output pixel, the standard deviation of the 8 predictions
        of the self-ensemble (float32, in output intensity units; see
        :mod:`napari_emsr.predict.uncertainty` for what it is and is not). It turns
        ``self_ensemble`` on, so the result is the self-ensemble's mean. True: in memory (with an
        in-memory result); a path: written like ``output`` (and resumed with it). Each ``"slice"``
        event then carries the slice's map, and ``"done"`` the pair ``(result, map)``.
    options : PredictOptions, optional
        Tiling, device, intensities, region, resume / overwrite (see
        :class:`~napari_emsr.predict.options.PredictOptions`); default: all defaults.
    **keywords
        Fields of :class:`~napari_emsr.predict.options.PredictOptions` (``tile=64``,
        ``overlap="exact"``, ``device="cpu"``, ...), a convenience that replaces those of ``options``.

    Yields
    ------
    Event
        Job ``"predict"``: ``"start"``, then ``"tiles"`` after each forward pass and ``"slice"`` as
        slices finish, then ``"done"`` with the result (see the module docstring for the payloads).

    Raises
    ------
    ValueError, TypeError
        For options that cannot work (before any file is read or written).
    napari_emsr.errors.OutputExistsError, napari_emsr.errors.PartialOutputError
        When the output, or an interrupted run's partial result, is in the way.
    napari_emsr.errors.HintedMemoryError
        When even the smallest tile does not fit in the device's memory.
    """
    options = build_options(options, **keywords)
    if uncertainty is not None and uncertainty is not False:
        if not isinstance(uncertainty, (bool, str, os.PathLike)):
            raise TypeError(f"uncertainty must be True, False, None or a path, got {type(uncertainty).__name__}")
        options = options.replace(self_ensemble=True)  # the map is the spread of the self-ensemble
    plan = make_plan(volume, model, options)
    try:
        first = options.first_slice
        if first is not None and (plan.volume.ndim != 3 or not 0 <= first < plan.volume.shape[0]):
            raise ValueError(f"first_slice {first} is not a slice of the input (shape {plan.volume.shape})")
        writer = _writers(plan, output, uncertainty, options)
        yield from _run(plan, writer, first, spread=isinstance(writer, PairWriter))
    finally:
        plan.close()


def _write_unit(writer: Any, unit: tuple, out: np.ndarray) -> None:
    for z, plane in zip(unit, out, strict=True):
        writer.write(z, plane)


def _run(plan: Plan, writer: Any, first_slice: int | None, spread: bool = False) -> Iterator[Event]:
    """Run the engine, pipelined: the next unit is read and the last one written while the network runs.

    One reader thread reads one unit ahead; for a file output one writer thread writes the unit
    before, so at most three units are in memory (one read ahead, one computed, one being written).
    A unit's "slice" events come once it is written (its done flags set), so what a resumed run
    reuses is exactly what the events reported. On any exit the threads are waited for before the
    writer is aborted or committed: nothing writes behind the writer's back.
    """
    reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emsr-read")
    writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emsr-write")
    pending: list[Future] = []
    try:
        done_mask = writer.open()
        state = _State(plan, done_mask)
        yield state.event("start", plan.summary(slices_reused=state.slices_done))
        per_unit = slices_per_unit(plan.tiles_per_slice(), plan.batch, int(np.prod(plan.out_shape[-2:])) * 4)
        reader = SlabReader(plan.volume.data, plan.block)
        runner = ModelRunner(plan.model, plan.device, plan.batch, plan.precision)
        units = list(plan_units(plan.slices, per_unit=per_unit, first=first_slice, done=done_mask))
        behind = getattr(writer, "kind", "array") != "array"  # an in-memory result is copied at once
        ahead = reads.submit(reader.read, units[0]) if units else None
        written: tuple[Future, tuple, np.ndarray] | None = None

        def finish(job: tuple[Future, tuple, np.ndarray]) -> Iterator[Event]:
            job[0].result()  # a write error (e.g. a full disk) is raised here
            for z, plane in zip(job[1], job[2], strict=True):
                state.slices_done += 1
                image, std = plane if spread else (plane, None)
                yield state.event("slice", SliceDone(z, image, state.slices_done, state.slices_total, std))

        for i, unit in enumerate(units):
            assert ahead is not None  # submitted for every unit
            raw = ahead.result()
            ahead = reads.submit(reader.read, units[i + 1]) if i + 1 < len(units) else None
            pending[:] = [f for f in (ahead, written[0] if written else None) if f is not None]
            out = yield from _run_unit(plan, runner, raw, unit, state, spread)
            if written is not None:
                yield from finish(written)
                written = None
            if behind:
                written = (writes.submit(_write_unit, writer, unit, out), unit, out)
                pending[:] = [f for f in (ahead, written[0]) if f is not None]
            else:
                _write_unit(writer, unit, out)
                yield from finish((_DONE, unit, out))
        if written is not None:
            yield from finish(written)
        result = writer.commit()
    except BaseException as exc:
        for future in pending:  # let a read or write in flight end before the writer is aborted
            future.cancel()
            try:
                future.result()
            except BaseException:  # noqa: BLE001 (its error is not the one being raised)
                pass
        writer.abort()  # nothing is left under the output's name; a temporary file is removed
        no_room = space_error_of(exc, writer)
        if no_room is not None:
            raise no_room from exc
        raise
    finally:
        reads.shutdown(wait=True, cancel_futures=True)
        writes.shutdown(wait=True, cancel_futures=True)
    yield state.event("done", result)


_DONE: Future = Future()
_DONE.set_result(None)


def space_error_of(exc: BaseException, writer: Any) -> Exception | None:
    """Return the hinted out-of-space error for an exception of a file writer, or None (an in-memory result: never)."""
    if getattr(writer, "kind", "array") == "array":
        return None
    from napari_emsr.io.writers import space_error

    return space_error(exc, writer)


class _State:
    """What changes while a run goes: counters, the clock, and the tiling (smaller after an out-of-memory error)."""

    def __init__(self, plan: Plan, done_mask: np.ndarray) -> None:
        self.plan, self.clock = plan, Clock()
        self.geometry: Geometry = plan.geometry
        self.slices_done = int(done_mask.sum())
        self.slices_total = len(done_mask)
        self.done = 0
        self.total = (self.slices_total - self.slices_done) * plan.tiles_per_slice()

    def event(self, kind: str, payload: Any = None) -> Event:
        eta = 0.0 if kind == "done" else self.clock.eta(self.done, self.total)
        return Event(
            JOB, kind, self.done, self.total, "tile", eta, self.clock.elapsed(),
            slice_message(self.slices_done, self.slices_total), payload,
        )  # fmt: skip


def _run_unit(plan: Plan, runner: ModelRunner, raw: np.ndarray, unit: tuple, state: _State, spread: bool = False):
    """Predict one unit, yielding 'tiles' events; on out-of-memory with one tile, halve the tile.

    With ``spread`` it returns the unit's slices as (image, spread) pairs.
    """
    if unit == (None,):
        where = "the input"
    else:
        where = f"slice {unit[0]}" if len(unit) == 1 else f"slices {unit[0]}..{unit[-1]}"
    while True:
        started = state.done
        blocks = predict_block(
            raw, runner, state.geometry, plan.intensity, self_ensemble=plan.self_ensemble, crop=plan.crop,
            where=where, spread=spread,
        )  # fmt: skip
        try:
            while True:
                try:
                    state.done += next(blocks)
                except StopIteration as stop:
                    return list(zip(*stop.value, strict=True)) if spread else stop.value
                yield state.event("tiles")
        except TileOutOfMemory as exc:
            _shrink(plan, state, started, exc)


def _shrink(plan: Plan, state: _State, started: int, exc: Exception) -> None:
    """Halve the run's tile after an out-of-memory error with one tile per pass, and recount the work."""
    g = state.geometry
    smaller = g.halved()
    if smaller.tile == g.tile:
        hints = [Hint("device", "cpu", "(the main memory is usually larger)")] if plan.device.type != "cpu" else []
        if g.halo > 0:
            halo = g.halo // 2 // g.window * g.window
            hints.append(Hint("overlap", halo, "(less context per tile needs less memory; tiles are less exact)"))
        raise HintedMemoryError(
            f"out of memory on {plan.device} even with one {g.tile}-pixel tile per pass; free memory on the device",
            *hints,
        ) from exc
    state.geometry = smaller
    remaining = state.slices_total - state.slices_done  # the unit that failed is not done yet
    state.done = started
    state.total = started + remaining * plan.tiles_per_slice(smaller)
    warnings.warn(
        f"out of memory on {plan.device} with one tile per pass: continuing with tile {smaller.tile}",
        OutOfMemoryWarning,
        stacklevel=2,
    )


def super_resolve(
    volume: Any, model: Any = None, *, output: str | os.PathLike | None = None,
    uncertainty: bool | str | os.PathLike | None = None, options: PredictOptions | None = None, **keywords: Any,
) -> Any:  # fmt: skip
    """Run :func:`iter_super_resolve` to the end.

    Returns the output array (a (z, y, x) or (y, x) numpy array in the input's dtype) when no
    ``output`` is given, otherwise the :class:`~pathlib.Path` written; with ``uncertainty``, the
    pair (that, the uncertainty map's array or path).
    """
    result = None
    for event in iter_super_resolve(volume, model, output=output, uncertainty=uncertainty, options=options,
                                    **keywords):  # fmt: skip
        if event.kind == "done":
            result = event.payload
    return result
