"""Isotropic reconstruction of an anisotropic volume: a generator of progress events.

The volume (z, y, x) samples z every ``K`` xy pixels. :func:`iter_isotropic` interpolates it to
the isotropic grid along z (cubic, :func:`~napari_emsr.isotropic.sampling.cubic_resample`), then
restores every xz plane and every yz plane with a scale-1 EMSR network trained on the volume's own
xy slices sampled the same way (:func:`~napari_emsr.isotropic.train.iter_train_isotropic`), and
fuses the two views by their mean. Each voxel's xz and yz predictions see different in-plane
context, so the mean also removes part of what either view gets wrong.

The work goes in blocks: a slab of output rows in z (with the network's context above and below)
by a band of y (with context for the yz planes); each block is independent, so memory stays
bounded for any volume and a block's result equals the whole-volume result up to the tiling's
tolerance. Output slices are written as their slab finishes, through the same writers as
prediction: OME-TIFF or OME-Zarr (with pyramids and done flags, so ``resume=True`` continues an
interrupted run), under a temporary name until complete.

Events (job ``"isotropic"``, unit ``"tile"``): ``"start"`` (:class:`IsotropicSummary`), ``"tiles"``
after each forward pass, ``"slice"`` (:class:`~napari_emsr.predict.api.SliceDone`) as output slices
are written, ``"done"`` (the array or the path written).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Generator, Iterator, Sequence

import numpy as np

from napari_emsr.errors import EMSRError, Hint, HintedMemoryError, HintedValueError
from napari_emsr.events import Clock, Event
from napari_emsr.isotropic.sampling import cubic_resample, isotropic_depth, output_positions
from napari_emsr.predict.engine import Geometry, ModelRunner, TileOutOfMemory, predict_planes, tiles_per_plane
from napari_emsr.predict.options import PredictOptions, build_options
from napari_emsr.predict.plan import Plan, PlanSummary, make_plan

__all__ = ["IsotropicSummary", "IsotropicFactorWarning", "iter_isotropic", "isotropic", "resolve_z_factor", "JOB",
           "VIEWS"]

#: the ``job`` of an isotropic reconstruction's events
JOB = "isotropic"
#: which planes are restored: both (fused by their mean), or one of them
VIEWS = ("xz+yz", "xz", "yz")
#: bytes of working memory a block may use (float32 copies of the block and its views)
BLOCK_BUDGET = 1 << 30
#: a z factor further than this (relative) outside the range the model was trained for is warned about
FACTOR_TOLERANCE = 0.2


class IsotropicFactorWarning(EMSRError, UserWarning):
    """The volume's z factor is far from the one the isotropic model was trained for."""


@dataclass(frozen=True)
class IsotropicSummary:
    """What a reconstruction does: the payload of its ``"start"`` event.

    Attributes
    ----------
    z_factor : float
        ``K``, xy pixels per z step, and ``z_factor_source`` where it came from.
    trained_z_factor : (float, float) or None
        The range the model was trained for (from its file), None if it does not say.
    views : str
        ``"xz+yz"``, ``"xz"`` or ``"yz"``.
    input_shape, output_shape : tuple of int
    input_pixel_size_nm, output_pixel_size_nm : tuple or None
    slab, band, context : int
        Output rows per slab, y rows per band, and the rows (and columns) of context around a block.
    slices_total, slices_reused : int
        Output slices, and those a resumed run takes from the interrupted one.
    engine : PlanSummary
        The tiling, device, precision and intensities of the network runs.
    """

    z_factor: float
    z_factor_source: str
    trained_z_factor: tuple[float, float] | None
    views: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_pixel_size_nm: tuple[float | None, ...] | None
    output_pixel_size_nm: tuple[float | None, ...] | None
    slab: int
    band: int
    context: int
    slices_total: int
    slices_reused: int
    engine: PlanSummary

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a plain (JSON-ready) dict."""
        out = asdict(self)
        out["engine"] = self.engine.to_dict()
        return out


def resolve_z_factor(z_factor: float | None, pixel_size_nm: Sequence[float | None] | None) -> tuple[float, str]:
    """Return ``K`` (given, or z step / mean xy pixel size) and where it came from; refuse what cannot work."""
    if z_factor is not None:
        value, source = float(z_factor), "given"
    else:
        sizes = tuple(pixel_size_nm or ())
        if len(sizes) != 3 or any(v is None or not v > 0 for v in sizes):
            raise HintedValueError(
                "the volume's z step and xy pixel size are not known, so its z factor is not either",
                Hint("z_factor", "K", "(z step / xy pixel size, e.g. 5 for 50 nm sections under 10 nm pixels)"),
                Hint("pixel_size", "(Z, Y, X)", "in nm"),
            )
        z, y, x = (float(v) for v in sizes)  # type: ignore[arg-type]  # checked above
        value, source = z / ((y + x) / 2), f"pixel sizes {z:g} / {(y + x) / 2:g} nm"
    if not (math.isfinite(value) and value > 1.0 + 1e-6):
        raise HintedValueError(
            f"the z factor is {value:g}: the volume is not coarser in z than in xy, so there is nothing to reconstruct",
            Hint("z_factor", "K", "(> 1: z step / xy pixel size)"),
        )
    return value, source


def _trained_range(model: Any) -> tuple[float, float] | None:
    sampling = (model.metadata.provenance or {}).get("section_sampling")
    if not sampling:
        return None
    low = float(sampling["factor"])
    return low, float(sampling.get("factor_max") or low)


def _check_model(plan: Plan, factor: float) -> tuple[float, float] | None:
    model = plan.model
    if model.config.scale != 1:
        raise HintedValueError(
            f"the model is a x{model.config.scale} super-resolution network; isotropic reconstruction needs a "
            "scale-1 network trained on this volume's xy slices sampled as its sections sample z",
            Hint("model", "FILE", "(a model trained for isotropic reconstruction, e.g. by train_isotropic)"),
        )
    trained = _trained_range(model)
    low, high = trained or (0.0, math.inf)
    if trained is not None and not low * (1 - FACTOR_TOLERANCE) <= factor <= high * (1 + FACTOR_TOLERANCE):
        span = f"{trained[0]:g}" if trained[0] == trained[1] else f"{trained[0]:g}..{trained[1]:g}"
        warnings.warn(IsotropicFactorWarning(
            f"the model was trained for z factors {span}, the volume's is {factor:g}: the result may be poor",
            Hint("model", "FILE", f"(one trained for a z factor of {factor:g})"),
        ), stacklevel=3)
    elif trained is None and model.metadata.trained:
        warnings.warn(IsotropicFactorWarning(
            "the model's file does not say which z factor it was trained for: check that it matches the volume's "
            f"({factor:g})"), stacklevel=3)
    return trained


def _blocks(depth: int, height: int, width: int, context: int, budget: int) -> tuple[int, int]:
    """Output rows per slab and y rows per band so that a block's working copies fit ``budget`` bytes.

    Whole xy planes first (a band of all y: no context to recompute in y), and slabs at least four
    times as deep as their context above and below (at most a third of the work is recomputed).
    """
    per_voxel = 4 * 6  # float32: the block, its two views' inputs and outputs, and the fused sum
    rows = int(budget / (per_voxel * height * width)) - 2 * context
    least = min(depth, max(32, 4 * context))
    if rows >= least:
        return min(depth, rows), height
    band = int(budget / (per_voxel * (least + 2 * context) * width)) - 2 * context
    return least, max(32, min(height, band))


def _writer(output: Any, shape: tuple[int, ...], plan: Plan, sizes, options: PredictOptions, extra: dict):
    if output is None:
        if options.resume:
            raise ValueError("resume needs an output file (an OME-Zarr) to resume")
        from napari_emsr.predict.api import ArrayWriter

        return ArrayWriter(shape, plan.out_dtype)
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"output must be a path (.ome.tif or .ome.zarr) or None, got {type(output).__name__}")
    from napari_emsr.io.writers import ngff_multiscale, open_writer, output_kind

    if plan.volume.path is not None and Path(output).resolve() == plan.volume.path.resolve():
        raise ValueError(f"{output} is the input; write the output to another path")
    fingerprint = plan.resume_fingerprint() if output_kind(output) == "ome-zarr" else dict(plan.fingerprint)
    fingerprint.update(extra)
    name = plan.volume.path.name if plan.volume.path else "isotropic"
    multiscale = ngff_multiscale(name, 3, sizes, scale=1, metadata={
        "method": "napari-emsr isotropic reconstruction", "trained_model": bool(plan.model.metadata.trained), **extra})
    return open_writer(output, shape=shape, dtype=plan.out_dtype, pixel_size_nm=sizes, multiscale=multiscale,
                       fingerprint=fingerprint, overwrite=options.overwrite, resume=options.resume,
                       pyramid=options.pyramid)  # fmt: skip


def iter_isotropic(
    volume: Any,
    model: Any,
    *,
    output: str | os.PathLike | None = None,
    z_factor: float | None = None,
    views: str = "xz+yz",
    options: PredictOptions | None = None,
    block_budget: int = BLOCK_BUDGET,
    blocks: tuple[int, int] | None = None,
    **keywords: Any,
) -> Generator[Event, None, None]:
    """Reconstruct an isotropic volume from an anisotropic one, yielding :class:`~napari_emsr.events.Event` s.

    Parameters
    ----------
    volume : path, Volume, dask array or array-like
        The anisotropic (z, y, x) stack.
    model : EMSR or path
        A scale-1 network trained for it (:func:`~napari_emsr.isotropic.train.iter_train_isotropic`).
    output : path, optional
        ``*.ome.tif`` or ``*.ome.zarr`` (resumable), written slice by slice under a temporary name;
        None: the result is an array.
    z_factor : float, optional
        ``K``, xy pixels per z step; default from the volume's pixel sizes. Need not be whole.
    views : str
        ``"xz+yz"`` (both, fused by their mean), ``"xz"`` or ``"yz"`` (half the work).
    options : PredictOptions, optional
        Tile, overlap, batch, device, precision, intensity range, pixel size, resume, overwrite,
        pyramid (``self_ensemble`` and ``region`` do not apply); ``**keywords`` replace its fields.
    block_budget : int
        Bytes of working memory per block.
    blocks : (int, int), optional
        Output rows per slab and y rows per band, instead of what ``block_budget`` allows.

    Output rows lie at input slice positions ``j / K`` (:func:`~.sampling.isotropic_depth` rows);
    the output's z pixel size is the input's divided by ``K``.
    """
    if views not in VIEWS:
        raise ValueError(f"views must be one of {', '.join(VIEWS)}, got {views!r}")
    options = build_options(options, **keywords)
    if options.self_ensemble:
        raise HintedValueError("the self-ensemble's rotations would turn z into x: it does not apply to isotropic "
                               "reconstruction", Hint("self_ensemble", False))  # fmt: skip
    if options.region is not None or options.first_slice is not None:
        raise ValueError("region and first_slice do not apply to isotropic reconstruction; crop the volume instead")
    plan = make_plan(volume, model, options)
    try:
        if plan.volume.ndim != 3 or plan.volume.shape[0] < 2:
            raise HintedValueError(f"isotropic reconstruction needs a stack of at least 2 slices, got shape "
                                   f"{tuple(plan.volume.shape)}", Hint("volume", "(z, y, x)"))  # fmt: skip
        factor, source = resolve_z_factor(z_factor, plan.volume.pixel_size_nm)
        trained = _check_model(plan, factor)
        depth, height, width = (int(n) for n in plan.volume.shape)
        out_shape = (isotropic_depth(depth, factor), height, width)
        sizes = plan.volume.pixel_size_nm
        out_sizes = None if sizes is None else (None if sizes[0] is None else sizes[0] / factor, *sizes[1:])
        extra = {"job": JOB, "z_factor": factor, "views": views}
        writer = _writer(output, out_shape, plan, out_sizes, options, extra)
        context = max(plan.geometry.halo, 8)
        slab, band = _blocks(out_shape[0], height, width, context, block_budget) if blocks is None else blocks
        if slab < 1 or band < 1:
            raise ValueError(f"blocks must be positive numbers of rows, got {blocks}")
        yield from _run(plan, writer, factor, source, trained, views, out_shape, out_sizes, slab, band, context)
    finally:
        plan.close()


class _Counter:
    def __init__(self, total: int, slices_done: int, slices_total: int) -> None:
        self.clock, self.done, self.total = Clock(), 0, total
        self.slices_done, self.slices_total = slices_done, slices_total

    def event(self, kind: str, payload: Any = None) -> Event:
        eta = 0.0 if kind == "done" else self.clock.eta(self.done, self.total)
        return Event(JOB, kind, self.done, self.total, "tile", eta, self.clock.elapsed(),
                     f"slice {self.slices_done}/{self.slices_total}", payload)  # fmt: skip


def _tiles(geometry: Geometry, views: str, rows: int, band: int, width: int) -> int:
    """Tiles of one block: ``band`` xz planes (rows, width) and ``width`` yz planes (rows, band)."""
    count = 0
    if "xz" in views:
        count += band * tiles_per_plane((rows, width), geometry, self_ensemble=False)
    if "yz" in views:
        count += width * tiles_per_plane((rows, band), geometry, self_ensemble=False)
    return count


def _slab_rows(z0: int, z1: int, depth: int, context: int) -> tuple[int, int]:
    return max(0, z0 - context), min(depth, z1 + context)


def _band_rows(y0: int, y1: int, height: int, context: int, views: str) -> tuple[int, int]:
    """Return the y rows read for a band: with context for the yz planes (xz planes need none: each is one y)."""
    if "yz" not in views:
        return y0, y1
    return max(0, y0 - context), min(height, y1 + context)


def _run(plan, writer, factor, source, trained, views, out_shape, out_sizes, slab, band, context) -> Iterator[Event]:
    depth_out, height, width = out_shape
    try:
        done_mask = writer.open()
        slabs = [(z0, min(z0 + slab, depth_out)) for z0 in range(0, depth_out, slab)]
        todo = [(z0, z1) for z0, z1 in slabs if not done_mask[z0:z1].all()]
        bands = [(y0, min(y0 + band, height)) for y0 in range(0, height, band)]
        geometry = plan.geometry

        def total(g: Geometry, work: list[tuple[int, int]]) -> int:
            count = 0
            for z0, z1 in work:
                a, b = _slab_rows(z0, z1, depth_out, context)
                for y0, y1 in bands:
                    c, d = _band_rows(y0, y1, height, context, views)
                    count += _tiles(g, views, b - a, d - c, width)
            return count

        counter = _Counter(total(geometry, todo), int(done_mask.sum()), depth_out)
        summary = IsotropicSummary(
            factor, source, trained, views, tuple(int(n) for n in plan.volume.shape), out_shape,
            None if plan.volume.pixel_size_nm is None else tuple(plan.volume.pixel_size_nm),
            None if out_sizes is None else tuple(out_sizes), slab, band, context, depth_out,
            int(done_mask.sum()), plan.summary(),
        )  # fmt: skip
        yield counter.event("start", summary)
        runner = ModelRunner(plan.model, plan.device, plan.batch, plan.precision)
        from napari_emsr.predict.api import SliceDone

        for index, (z0, z1) in enumerate(todo):
            a, b = _slab_rows(z0, z1, depth_out, context)
            out = np.empty((z1 - z0, height, width), dtype=plan.out_dtype)
            for y0, y1 in bands:
                c, d = _band_rows(y0, y1, height, context, views)
                started = counter.done
                while True:
                    try:
                        fused = yield from _block(plan, runner, geometry, factor, views, (a, b), (c, d), counter)
                        break
                    except TileOutOfMemory as exc:
                        geometry = _smaller(plan, geometry, exc)
                        counter.done = started
                        counter.total = started + total(geometry, todo[index:])  # a slight over-count
                out[:, y0:y1] = plan.intensity.from_network(fused[z0 - a : z1 - a, y0 - c : y1 - c])
            for z in range(z0, z1):
                if done_mask[z]:  # finished by the interrupted run: kept as it is
                    continue
                writer.write(z, out[z - z0])
                counter.slices_done += 1
                yield counter.event("slice", SliceDone(z, out[z - z0], counter.slices_done, depth_out))
        result = writer.commit()
    except BaseException as exc:
        writer.abort()
        from napari_emsr.predict.api import space_error_of

        no_room = space_error_of(exc, writer)
        if no_room is not None:
            raise no_room from exc
        raise
    yield counter.event("done", result)


def _block(plan: Plan, runner, geometry, factor, views, rows, band, counter) -> Generator[Event, None, np.ndarray]:
    """Restore output rows ``rows`` x y rows ``band`` (all x): the fused views, network units (r, b, X)."""
    a, b = rows
    c, d = band
    depth = plan.volume.shape[0]
    positions = output_positions(range(a, b), factor)
    first = max(0, int(math.floor(positions[0])) - 1)
    last = min(depth, int(math.floor(positions[-1])) + 3)
    raw = np.asarray(plan.volume.data[first:last, c:d, :])
    from napari_emsr.predict.intensity import check_finite

    check_finite(raw, f"slices {first}..{last - 1}")
    sections = plan.intensity.to_network(raw)  # (n, band, X)
    grid = cubic_resample(sections.transpose(1, 0, 2), positions - first).transpose(1, 0, 2)  # (rows, band, X)
    fused = np.zeros(grid.shape, dtype=np.float32)
    if "xz" in views:  # planes at fixed y: (rows, X)
        pred = yield from _planes(runner, geometry, np.ascontiguousarray(grid.transpose(1, 0, 2)), counter)
        fused += pred.transpose(1, 0, 2)
    if "yz" in views:  # planes at fixed x: (rows, band)
        pred = yield from _planes(runner, geometry, np.ascontiguousarray(grid.transpose(2, 0, 1)), counter)
        fused += pred.transpose(1, 2, 0)
    if views == "xz+yz":
        fused *= 0.5
    return fused


def _planes(runner, geometry, planes: np.ndarray, counter: _Counter) -> Generator[Event, None, np.ndarray]:
    work = predict_planes(planes, runner, geometry)
    while True:
        try:
            counter.done += next(work)
        except StopIteration as stop:
            return stop.value
        yield counter.event("tiles")


def _smaller(plan: Plan, geometry: Geometry, exc: Exception) -> Geometry:
    smaller = geometry.halved()
    if smaller.tile == geometry.tile:
        hints = [Hint("device", "cpu", "(the main memory is usually larger)")] if plan.device.type != "cpu" else []
        raise HintedMemoryError(
            f"out of memory on {plan.device} even with one {geometry.tile}-pixel tile per pass; free memory on the "
            "device", *hints) from exc
    from napari_emsr.predict.engine import OutOfMemoryWarning

    warnings.warn(f"out of memory on {plan.device} with one tile per pass: continuing with tile {smaller.tile}",
                  OutOfMemoryWarning, stacklevel=2)
    return replace(smaller)


def isotropic(volume: Any, model: Any, *, output: str | os.PathLike | None = None, **keywords: Any) -> Any:
    """Run :func:`iter_isotropic` to the end: the (z', y, x) array, or the path written."""
    result = None
    for event in iter_isotropic(volume, model, output=output, **keywords):
        if event.kind == "done":
            result = event.payload
    return result
