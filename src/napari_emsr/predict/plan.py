"""Everything a prediction run decides before the first tile: validated once, at the boundary."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch

from napari_emsr.device import default_batch, default_tile, resolve_precision, select_device
from napari_emsr.errors import EMSRError, Hint
from napari_emsr.io.readers import Volume, as_volume
from napari_emsr.io.writers import ngff_multiscale
from napari_emsr.model.emsr import EMSR, receptive_radius
from napari_emsr.predict.engine import Geometry, prepare_model, tiles_per_plane
from napari_emsr.predict.halo import DEFAULT_TOLERANCE, effective_radius
from napari_emsr.predict.intensity import IntensityMap, resolve_intensity
from napari_emsr.predict.options import PredictOptions, build_options
from napari_emsr.predict.slabs import read_block
from napari_emsr.tiling import default_blend, snap_up, window_span

__all__ = [
    "Plan", "PlanSummary", "ClusterInfo", "make_plan", "content_digest", "UntrainedModelWarning", "PixelSizeWarning",
    "TileSizeWarning",
    "PIXEL_SIZE_TOLERANCE",
]  # fmt: skip

#: relative difference between the input's and the model's pixel size above which we warn, for a model
#: without a measured ``valid_input_pixel_size_nm`` range (with one, the warning uses that range)
PIXEL_SIZE_TOLERANCE = 0.25


class UntrainedModelWarning(UserWarning):
    """The model has random weights: its output is not a super-resolution result."""


class TileSizeWarning(UserWarning):
    """The tile size given is not on the attention window's grid: it was snapped up to it."""


class PixelSizeWarning(EMSRError, UserWarning):
    """The input's pixel size is unknown or far from the one the model was trained on.

    A warning with :class:`~napari_emsr.errors.Hint` objects (``str()`` phrases them for Python;
    the CLI and napari phrase them their own way).
    """


@dataclass(frozen=True)
class ClusterInfo:
    """The dask cluster of a distributed run (:func:`napari_emsr.iter_super_resolve_distributed`).

    Attributes
    ----------
    scheduler : str
        The scheduler's address.
    workers, worker_gpus : int
        Worker processes, and the CUDA devices they see in all.
    dashboard : str or None
        The dashboard's address (None without bokeh).
    """

    scheduler: str
    workers: int
    worker_gpus: int
    dashboard: str | None = None


@dataclass(frozen=True)
class PlanSummary:
    """What a prediction run does: the payload of its ``"start"`` event (see :meth:`to_dict` for JSON).

    Attributes
    ----------
    device : str
        The device (a distributed run: the device asked of each worker, e.g. ``"auto"``).
    tile, halo, blend : int
        The tiling, in input pixels (:mod:`napari_emsr.tiling`).
    window_span : int
        Input pixels per side the network sees per tile.
    receptive_radius : int
        The network's theoretical receptive radius (input pixels).
    exact : bool
        Whether the halo covers it (tiled output == whole-slice output up to float rounding).
    tile_choice : dict or None
        With ``tile="auto"``: the seconds per slice of each tile timed, and whether the choice was cached.
    halo_mode : str
        How the halo was chosen (``"exact"``, ``"given"``, ``"auto: ..."``).
    batch : int
        Tiles per forward pass.
    self_ensemble : bool
        Whether the 8 flips / rotations are averaged.
    precision : str
        The forward pass's arithmetic (``"fp32"``, ``"bf16"``, ``"fp16"``; a distributed run: the
        precision asked of each worker), and ``precision_reason`` why.
    scale : int
        The up-sampling factor.
    tiles_per_slice : int
        Forward-pass tiles per output slice (self-ensemble included).
    input_shape, output_shape : tuple of int
        Shapes of the input and of the whole output.
    dtype : str
        The output's dtype.
    input_pixel_size_nm, output_pixel_size_nm : tuple of (float or None), or None
        Pixel sizes per axis.
    intensity : dict
        The intensity map (:meth:`~napari_emsr.predict.IntensityMap.to_dict`).
    trained : bool
        False for a model with random weights (its output is not a super-resolution result).
    slices_total : int
        Output slices (1 for a 2D image).
    slices_reused : int
        Slices an interrupted run finished that this resumed run reuses (0 otherwise).
    cluster : ClusterInfo or None
        The cluster of a distributed run.
    """

    device: str
    tile: int
    halo: int
    blend: int
    window_span: int
    receptive_radius: int
    exact: bool
    halo_mode: str
    batch: int
    self_ensemble: bool
    scale: int
    tiles_per_slice: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    dtype: str
    input_pixel_size_nm: tuple[float | None, ...] | None
    output_pixel_size_nm: tuple[float | None, ...] | None
    intensity: dict[str, Any]
    trained: bool
    slices_total: int = 1
    slices_reused: int = 0
    cluster: ClusterInfo | None = None
    precision: str = "fp32"
    precision_reason: str = ""
    tile_choice: dict[str, Any] | None = None

    @property
    def slices_to_do(self) -> int:
        """Return the slices this run computes."""
        return self.slices_total - self.slices_reused

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON-ready values (shapes and sizes as lists)."""
        out = asdict(self)
        for key in ("input_shape", "output_shape", "input_pixel_size_nm", "output_pixel_size_nm"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


@dataclass(frozen=True)
class Plan:
    """A validated prediction run: input, prepared model, tiling, intensities, output layout.

    Nothing in a plan changes while it runs: a run that has to shrink its tiles after an
    out-of-memory error keeps the smaller geometry in its own state.
    """

    volume: Volume
    owned: bool
    model: EMSR
    model_source: str | None
    device: torch.device
    geometry: Geometry
    batch: int
    intensity: IntensityMap
    self_ensemble: bool
    block: tuple[slice, slice]
    crop: tuple[slice, slice] | None
    out_shape: tuple[int, ...]
    out_pixel_size: tuple[float | None, ...] | None
    multiscale: dict[str, Any]
    exact: bool
    fingerprint: dict[str, Any]
    halo_mode: str = "given"
    options: PredictOptions = field(default_factory=PredictOptions)
    precision: str = "fp32"
    precision_reason: str = ""
    tile_choice: dict[str, Any] | None = None

    @property
    def slices(self) -> list[int | None]:
        """The slice indices of the input (``[None]`` for a 2D image)."""
        return list(range(self.volume.shape[0])) if self.volume.ndim == 3 else [None]

    @property
    def out_dtype(self) -> np.dtype:
        """The output's dtype."""
        return np.dtype(self.intensity.dtype)

    def tiles_per_slice(self, geometry: Geometry | None = None) -> int:
        """Return the number of tiles (network calls, self-ensemble included) per output slice.

        ``geometry``: another tiling than the plan's (e.g. after an out-of-memory error).
        """
        shape = (self.block[0].stop - self.block[0].start, self.block[1].stop - self.block[1].start)
        return tiles_per_plane(shape, geometry or self.geometry, self_ensemble=self.self_ensemble)

    def summary(self, *, slices_reused: int = 0) -> PlanSummary:
        """Describe what the run does (``slices_reused``: slices a resumed run takes from the interrupted one)."""
        g = self.geometry
        return PlanSummary(
            device=str(self.device), tile=g.tile, halo=g.halo, blend=g.blend,
            window_span=window_span(g.tile, g.halo, g.blend, g.window),
            receptive_radius=receptive_radius(self.model.config), exact=self.exact, halo_mode=self.halo_mode,
            batch=self.batch, self_ensemble=self.self_ensemble, scale=g.scale, tiles_per_slice=self.tiles_per_slice(),
            input_shape=tuple(int(n) for n in self.volume.shape), output_shape=tuple(int(n) for n in self.out_shape),
            dtype=self.out_dtype.name, input_pixel_size_nm=_sizes(self.volume.pixel_size_nm),
            output_pixel_size_nm=_sizes(self.out_pixel_size), intensity=self.intensity.to_dict(),
            trained=bool(self.model.metadata.trained), slices_total=len(self.slices), slices_reused=int(slices_reused),
            precision=self.precision, precision_reason=self.precision_reason, tile_choice=self.tile_choice,
        )  # fmt: skip

    def resume_fingerprint(self) -> dict[str, Any]:
        """Return :attr:`fingerprint` plus a digest of the input's content (it reads the input: call it once).

        What a resumable output records: resuming after the input's content changed would mix
        two inputs in one output, so the digest of a few sampled slices is compared too. The plan
        itself is left as it is.
        """
        return {**self.fingerprint, "input_content": content_digest(self.volume.data, self.block)}

    def close(self) -> None:
        """Close the input volume if the plan opened it."""
        if self.owned:
            self.volume.close()


def _sizes(sizes: Sequence[float | None] | None) -> tuple[float | None, ...] | None:
    return None if sizes is None else tuple(None if v is None else float(v) for v in sizes)


#: content_digest: how many slices it samples, and the largest plane it hashes whole (pixels)
DIGEST_SLICES = 8
DIGEST_WHOLE_PLANE = 2**22
DIGEST_PATCH = 512


def content_digest(data: Any, block: tuple[slice, slice] | None = None) -> dict[str, Any]:
    """Return a cheap fingerprint of an image's or a stack's content: SHA-256 of sampled pixels.

    Up to :data:`DIGEST_SLICES` evenly spaced slices (first and last included; every slice of a
    short stack) are read within ``block`` (rows, columns); a plane of up to
    :data:`DIGEST_WHOLE_PLANE` pixels is hashed whole, a larger one as five
    :data:`DIGEST_PATCH`-pixel patches (the four corners and the centre), so the cost is bounded
    whatever the volume's size. Shape and dtype are hashed too.
    """
    shape = tuple(int(n) for n in data.shape)
    if block is None:
        block = (slice(0, shape[-2]), slice(0, shape[-1]))
    h, w = block[0].stop - block[0].start, block[1].stop - block[1].start
    if len(shape) == 3:
        picked = {int(round(v)) for v in np.linspace(0, shape[0] - 1, min(shape[0], DIGEST_SLICES))}
        slices: list[int | None] = [*sorted(picked)]
    else:
        slices = [None]  # a 2D image: the one plane
    if h * w <= DIGEST_WHOLE_PLANE:
        patches = [block]
    else:
        p = DIGEST_PATCH
        ys = [block[0].start, block[0].start + max(0, h - p), block[0].start + max(0, (h - p) // 2)]
        xs = [block[1].start, block[1].start + max(0, w - p), block[1].start + max(0, (w - p) // 2)]
        corners = [(ys[0], xs[0]), (ys[0], xs[1]), (ys[1], xs[0]), (ys[1], xs[1]), (ys[2], xs[2])]
        patches = [(slice(y, min(y + p, block[0].stop)), slice(x, min(x + p, block[1].stop))) for y, x in corners]
    digest = hashlib.sha256(json.dumps([shape, np.dtype(data.dtype).str, slices]).encode())
    for z in slices:
        for patch in patches:
            digest.update(np.ascontiguousarray(read_block(data, (z,), patch)).tobytes())
    return {
        "sha256": digest.hexdigest(),
        "slices": slices if slices != [None] else None,
        "patch": None if patches == [block] else DIGEST_PATCH,
    }


def _load_model(model: Any) -> tuple[EMSR, str | None]:
    if isinstance(model, EMSR):
        return model, None
    if model is None or isinstance(model, (str, os.PathLike)):
        from napari_emsr.model_io import load_model, resolve_model_path

        path = resolve_model_path(model)
        return load_model(path), str(path.resolve())
    raise TypeError(f"model must be an EMSR network or the path of a model file, got {type(model).__name__}")


def _check_model(model: EMSR, sizes: Sequence[float | None] | None) -> None:
    meta = model.metadata
    if not meta.trained:
        warnings.warn(
            "this model has random weights (its metadata says trained=False): the output is NOT a "
            "super-resolution result; use it only to test the pipeline",
            UntrainedModelWarning,
            stacklevel=4,
        )
    trained_nm, valid = meta.input_pixel_size_nm, meta.valid_input_pixel_size_nm
    if trained_nm is None and valid is None:
        return
    measured = f"measured valid for {valid[0]:g}-{valid[1]:g} nm" if valid else ""
    if trained_nm is not None:
        expected = f"the model was trained on {trained_nm:g} nm pixels" + (f" ({measured})" if valid else "")
    else:
        assert valid is not None  # one of the two is known
        expected = f"the model was measured to work for {valid[0]:g}-{valid[1]:g} nm input pixels"
    known = [s for s in (sizes or [])[-2:] if s is not None]
    if not known:
        warnings.warn(
            PixelSizeWarning(
                f"the input's pixel size is unknown; {expected}. Check that the data match",
                Hint("pixel_size", "NM", "to give the input's pixel size"),
            ),
            stacklevel=4,
        )
        return
    size = float(np.mean(known))
    if trained_nm is not None:
        target = trained_nm
    else:
        assert valid is not None
        target = (valid[0] * valid[1]) ** 0.5
    if valid is not None:  # the measured range where the model beats bicubic, when the file has one
        if valid[0] <= size <= valid[1]:
            return
        why = f"is outside the range the model was measured to work for ({valid[0]:g}-{valid[1]:g} nm input"
        why += f", trained on {trained_nm:g} nm)" if trained_nm is not None else ")"
    elif trained_nm is not None and abs(size / trained_nm - 1) > PIXEL_SIZE_TOLERANCE:
        change = 100 * (size / trained_nm - 1)
        why = f"differs from the model's training pixel size ({trained_nm:g} nm) by {change:+.0f} %"
    else:
        return
    warnings.warn(
        PixelSizeWarning(
            f"the input's pixel size ({size:g} nm) {why}: results may be poor. Fine-tune the model on data at "
            f"{size:g} nm, use a model made for this pixel size (emsr info --zoo lists the shipped ones), or "
            f"resample the input to about {target:g} nm first (napari_emsr.resample.resize)"
        ),
        stacklevel=4,
    )


def _halo(model: EMSR, overlap: Any, sample: Any) -> tuple[int, str]:
    """Return the halo in input pixels (on the window grid) and how it was chosen.

    ``overlap``: None or "auto" (the effective radius stored with the model, else measured on
    ``sample``, a callable giving a normalised central crop of the input), "exact" (the theoretical
    receptive radius), or a number.
    """
    config = model.config
    window, radius = config.window_size, receptive_radius(config)
    if overlap == "exact":
        return snap_up(radius, window), "exact"
    if overlap is None or overlap == "auto":
        stored = model.metadata.effective_radius_px
        if stored is not None:
            return snap_up(min(stored, radius), window), f"auto: the model's effective radius {stored} px"
        measured = effective_radius(model, sample(), tolerance=DEFAULT_TOLERANCE)
        tolerance = f"{255 * DEFAULT_TOLERANCE:g} grey level"
        return snap_up(measured, window), f"auto: effective radius {measured} px at {tolerance}"
    given = int(overlap)
    halo = snap_up(given, window)
    return halo, "given" if halo == given else f"given {given}, rounded up to the {window}-pixel attention window"


def _geometry(
    model: EMSR, device: torch.device, tile: int | None, halo: int, blend: int | None, precision: str = "fp32"
) -> Geometry:
    config = model.config
    window = config.window_size
    given = tile
    tile = snap_up(max(default_tile(device, precision) if given is None else given, 2 * window), window)
    if given is not None and given != tile:
        why = (
            f"is below two of the model's {window}-pixel attention windows"
            if given < 2 * window
            else f"is not a multiple of the model's {window}-pixel attention window"
        )
        warnings.warn(
            f"tile {given} {why}: using tile {tile}, snapped up to it (valid tiles: multiples of {window}, at "
            f"least {2 * window})",
            TileSizeWarning,
            stacklevel=4,
        )
    blend = default_blend(tile, window) if blend is None else blend
    if tile < 4 * blend + 2 * window:
        raise ValueError(f"blend {blend} is too wide for tile {tile}: use blend <= {(tile - 2 * window) // 4}")
    return Geometry(tile=tile, halo=halo, blend=blend, window=window, scale=config.scale)


def _central_sample(volume: Volume, intensity: IntensityMap, model: EMSR):
    """Return a callable reading a normalised central crop of the middle slice (for measuring the halo)."""

    def read() -> np.ndarray:
        side = 2 * receptive_radius(model.config) + 4 * model.config.window_size
        h, w = volume.shape[-2:]
        y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        plane = volume.data[volume.shape[0] // 2] if volume.ndim == 3 else volume.data
        raw = np.asarray(plane[y0 : y0 + side, x0 : x0 + side])
        return intensity.to_network(raw)

    return read


def _region(region: tuple[slice, slice] | None, shape: tuple[int, int]) -> tuple[tuple[int, int], ...] | None:
    """((y0, y1), (x0, x1)) of the options' region (two slices), checked against the plane's ``shape``."""
    if region is None:
        return None
    bounds = []
    for axis, (part, size) in enumerate(zip(region, shape, strict=True)):
        start, stop, _ = part.indices(size)
        if not 0 <= start < stop <= size:
            raise ValueError(f"region {'yx'[axis]} range [{start}, {stop}) is empty or outside the image (0..{size})")
        bounds.append((start, stop))
    return bounds[0], bounds[1]


def _block(region, shape, geometry: Geometry) -> tuple[tuple[slice, slice], tuple[slice, slice] | None]:
    """Input pixels to read (the region plus context, window-aligned) and the output crop."""
    if region is None:
        return (slice(0, shape[0]), slice(0, shape[1])), None
    margin, s, m = geometry.halo + geometry.blend, geometry.scale, geometry.window
    block, crop = [], []
    for (start, stop), size in zip(region, shape, strict=False):
        first = max(0, (start - margin) // m * m)
        block.append(slice(first, min(size, stop + margin)))
        crop.append(slice(s * (start - first), s * (stop - first)))
    return (block[0], block[1]), (crop[0], crop[1])


def _model_digest(model: EMSR) -> str:
    digest = hashlib.sha256(model.config.to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _layout(volume: Volume, model: EMSR, region, geometry: Geometry):
    """Output shape, output pixel sizes and the NGFF multiscale entry."""
    s = geometry.scale
    (y0, y1), (x0, x1) = region or ((0, volume.shape[-2]), (0, volume.shape[-1]))
    out_shape = (*volume.shape[:-2], s * (y1 - y0), s * (x1 - x0))
    sizes = volume.pixel_size_nm
    out_sizes = None if sizes is None else (*sizes[:-2], *(None if v is None else v / s for v in sizes[-2:]))
    multiscale = ngff_multiscale(
        volume.path.name if volume.path else "super-resolved", volume.ndim, sizes, scale=s, offset=(y0, x0),
        metadata={"method": "napari-emsr super-resolution", "scale": s, "trained_model": bool(model.metadata.trained)},
    )  # fmt: skip
    return out_shape, out_sizes, multiscale


def make_plan(volume: Any, model: Any, options: PredictOptions | None = None, **keywords: Any) -> Plan:
    """Resolve every default of a run and check what needs the input and the model.

    Parameters
    ----------
    volume : path, Volume, dask array or array-like
        The input (see :func:`napari_emsr.iter_super_resolve`).
    model : EMSR, path or None
        The network, a model file or a zoo name; None: the shipped default model.
    options : PredictOptions, optional
        The run's options (default: all defaults).
    **keywords
        Fields of :class:`PredictOptions` that replace those of ``options``.
    """
    options = build_options(options, **keywords)
    resolved = select_device(options.device)
    precision, precision_reason = resolve_precision(options.precision, resolved)
    net, source = _load_model(model)
    asked_tile = options.tile if isinstance(options.tile, int) else None  # "auto" is timed once the halo is known
    # checks tile and blend before any reading
    geometry = _geometry(net, resolved, asked_tile, 0, options.blend, precision)
    batch = default_batch(resolved) if options.batch is None else options.batch
    vol, owned = as_volume(volume, pixel_size=options.pixel_size)
    try:
        _check_model(net, vol.pixel_size_nm)
        intensity = resolve_intensity(vol.data, net.metadata.normalization, intensity_range=options.intensity_range)
        halo, halo_mode = _halo(net, options.overlap, _central_sample(vol, intensity, net))
        geometry = replace(geometry, halo=halo)
        exact = halo >= receptive_radius(net.config)
        plane = (vol.shape[-2], vol.shape[-1])
        bounds = _region(options.region, plane)
        digest = _model_digest(net)
        prepared = prepare_model(net, resolved)
        prepared.metadata = net.metadata
        tile_choice = None
        if options.tile == "auto":
            from napari_emsr.predict.autotile import choose_tile

            shape = plane if bounds is None else (bounds[0][1] - bounds[0][0], bounds[1][1] - bounds[1][0])
            tile_choice = choose_tile(prepared, resolved, precision, shape, halo, key_model=digest, blend=options.blend,
                                      batch=batch)  # fmt: skip
            geometry = replace(_geometry(net, resolved, tile_choice["tile"], 0, options.blend), halo=halo)
        block, crop = _block(bounds, plane, geometry)
        out_shape, out_sizes, multiscale = _layout(vol, net, bounds, geometry)
        fingerprint = {
            "input": str(vol.path.resolve()) if vol.path else "array",
            "input_shape": list(vol.shape),
            "input_dtype": np.dtype(vol.dtype).name,
            "model_sha256": digest,
            "tile": geometry.tile,
            "halo": geometry.halo,
            "blend": geometry.blend,
            "self_ensemble": options.self_ensemble,
            "intensity": [intensity.low, intensity.high],
            "region": [list(b) for b in bounds] if bounds else None,
            "precision": precision,
        }
    except BaseException:
        if owned:
            vol.close()
        raise
    return Plan(
        vol, owned, prepared, source, resolved, geometry, batch, intensity, options.self_ensemble, block, crop,
        out_shape, out_sizes, multiscale, exact, fingerprint, halo_mode, options, precision, precision_reason,
        dict(tile_choice) if tile_choice is not None else None,
    )  # fmt: skip
