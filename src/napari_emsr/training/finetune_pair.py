"""Fine-tuning on an LR volume and an HR field inside it, as acquired: composed once, for every front end.

``emsr finetune`` and the napari Fine-tune panel both build a :class:`FineTuneJob` (the pair as a
:class:`PairSpec`, the output, the training settings, the base model) and run
:func:`iter_finetune_pair`, which

1. checks the inputs once (3D stacks, pixel sizes, the scale against the base model's; then every
   slice for NaN or infinite values, named by the volume's name, e.g. its file);
2. locates the HR field in the LR volume and matches its intensities
   (:func:`~napari_emsr.training.pairs.prepare_pair`);
3. checks the HR reference against eq. 9 (:func:`check_reference`), when asked;
4. trains (:func:`~napari_emsr.training.trainer.iter_finetune`) with the pair's facts in the model's
   provenance, and after each validation, when asked, applies the network just saved to an LR crop
   of a held-out slice (a preview).

:func:`iter_locate` runs steps 1 to 3 only (the panel's "Locate" button). Both yield
:class:`napari_emsr.events.Event` s:

- job ``"locate"``: ``"start"``, ``"pair"`` (payload :class:`~napari_emsr.training.pairs.PairReport`),
  ``"noise"`` (payload :class:`NoiseChecked`), ``"done"`` (payload ``(report, noise check or None)``);
- job ``"finetune"``: ``"start"`` (payload the job), ``"pair"``, ``"noise"``, ``"info"``, then the
  trainer's ``"step"`` and ``"validation"``, ``"preview"`` (payload :class:`Preview`) and ``"done"``
  (payload :class:`~napari_emsr.training.trainer.TrainResult`).

Closing the generator stops the run between two steps; the trainer saves its last state and keeps
the best model.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Mapping, Sequence

import numpy as np

from napari_emsr.config import PRESETS, ConfigError, TrainingConfig
from napari_emsr.errors import Hint, HintedValueError
from napari_emsr.events import Clock, Event
from napari_emsr.training.pairs import PairError, PairReport, integer_ratio, prepare_pair

__all__ = [
    "PairSpec",
    "FineTuneJob",
    "NoiseChecked",
    "Preview",
    "iter_locate",
    "iter_fit_degradation",
    "DegradationPreview",
    "iter_finetune_pair",
    "check_reference",
    "pair_provenance",
    "checkpoint_step",
]


@dataclass(frozen=True)
class NoiseChecked:
    """The eq. 9 check of the HR reference (:func:`~napari_emsr.metrics.noise_check`) on a few of its slices."""

    check: Any
    slices: list[int]


@dataclass(frozen=True)
class Preview:
    """The network's output on an LR crop; ``offset`` is the crop's first LR pixel (z, y, x)."""

    step: int
    image: np.ndarray
    offset: tuple[int, int, int]
    scale: int


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise HintedValueError(f"{name} must be a positive number of nm, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PairSpec:
    """An LR volume (a large field) and an HR volume (a small field inside it), and how to align them.

    Validated on creation (shapes, sizes, the ratio); the data are read only when the pair is used.

    Attributes
    ----------
    lr, hr : array-like, (z, y, x)
        The volumes (numpy, zarr or dask arrays; read lazily where possible).
    lr_pixel_size, hr_pixel_size : float, optional
        In-plane pixel sizes in nm; with both, the HR is resized to the nearest integer ratio.
    scale : int, optional
        The ratio when the pixel sizes are unknown (must agree with them when both are given).
    offset : (z, y, x), optional
        The HR field's origin in LR pixels, when known: skips the search.
    min_score : float
        Matches with a lower normalised cross-correlation are refused.
    match_contrast : bool
        Map HR intensities onto the LR's (gain and offset).
    register : bool
        Register finely (sub-pixel offset, rotation up to 5 degrees, refined pixel-size ratio,
        per-slice drift) and resample the HR onto the LR's grid; see ``prepare_pair``.
    z_step : float
        With ``register``: LR slices per HR slice.
    lr_name, hr_name : str
        How messages name the volumes (a file, a layer).
    """

    lr: Any
    hr: Any
    lr_pixel_size: float | None = None
    hr_pixel_size: float | None = None
    scale: int | None = None
    offset: tuple[int, int, int] | None = None
    min_score: float = 0.5
    match_contrast: bool = True
    register: bool = False
    z_step: float = 1.0
    lr_name: str = "the LR volume"
    hr_name: str = "the HR volume"

    def __post_init__(self) -> None:
        for name, data in ((self.lr_name, self.lr), (self.hr_name, self.hr)):
            if np.ndim(data) != 3 or np.shape(data)[0] < 2:
                raise HintedValueError(
                    f"{name} has shape {tuple(np.shape(data))}: fine-tuning needs a (z, y, x) stack of at least "
                    "2 slices"
                )
        object.__setattr__(self, "lr_pixel_size", _positive(self.lr_pixel_size, "the LR pixel size"))
        object.__setattr__(self, "hr_pixel_size", _positive(self.hr_pixel_size, "the HR pixel size"))
        if self.scale is not None:
            whole = isinstance(self.scale, (int, np.integer)) and not isinstance(self.scale, bool)
            if not whole or not 1 <= self.scale <= 4:
                raise HintedValueError(f"the scale must be a whole number from 1 to 4, got {self.scale!r}")
            object.__setattr__(self, "scale", int(self.scale))
        if self.offset is not None:
            values = tuple(self.offset)
            if len(values) != 3 or any(isinstance(v, bool) or int(v) != v or v < 0 for v in values):
                raise HintedValueError(f"the offset must be three whole numbers >= 0 (z, y, x), got {self.offset!r}")
            object.__setattr__(self, "offset", tuple(int(v) for v in values))
        if not (isinstance(self.min_score, (int, float)) and -1 <= self.min_score <= 1):
            raise HintedValueError(f"the minimum match score must be between -1 and 1, got {self.min_score!r}")
        ratio_scale = self.ratio_scale
        if ratio_scale is not None and self.scale is not None and self.scale != ratio_scale:
            raise PairError(
                f"the pixel sizes ({self.lr_pixel_size:g} and {self.hr_pixel_size:g} nm) make a x{ratio_scale} pair, "
                f"but scale {self.scale} was asked for"
            )

    @property
    def ratio_scale(self) -> int | None:
        """The scale the pixel sizes give (None unless both are known); PairError outside x1..x4."""
        if self.lr_pixel_size and self.hr_pixel_size:
            return integer_ratio(self.lr_pixel_size, self.hr_pixel_size)[0]
        return None

    @property
    def known_scale(self) -> int | None:
        """The pair's scale from the pixel sizes, else the one given (None while unknown)."""
        return self.ratio_scale or self.scale

    def for_base(self, base: Any) -> PairSpec:
        """Return the pair with its scale settled by the base model (a file, a network or None).

        Without both pixel sizes and a scale the base model's scale is used; a base model of
        another scale than the pixel sizes give is refused.

        Raises
        ------
        HintedValueError
            The scale cannot be known, or the base model's differs.
        """
        base_scale = _scale_of(base)
        scale = self.known_scale
        if scale is None:
            if base_scale is None:
                sides = (("lr", self.lr_name, self.lr_pixel_size), ("hr", self.hr_name, self.hr_pixel_size))
                unknown = [name for _, name, size in sides if not size]
                hints = [Hint(f"{side}_pixel_size", "NM") for side, _, size in sides if not size]
                what = "the pixel size of " + unknown[0] + " is" if len(unknown) == 1 else (
                    f"the pixel sizes of {unknown[0]} and {unknown[1]} are")  # fmt: skip
                raise HintedValueError(f"{what} unknown, so the pair's scale is not known", *hints, Hint("scale", "S"))
            return dataclasses.replace(self, scale=base_scale)
        if base_scale is not None and base_scale != scale:
            from napari_emsr.zoo import zoo_models

            shipped = [m.name for m in zoo_models() if m.scale == scale]
            sizes = (
                f"the pixel sizes ({self.lr_pixel_size:g} and {self.hr_pixel_size:g} nm) make a x{scale} pair"
                if self.ratio_scale is not None
                else f"the pair is x{scale}"
            )
            raise HintedValueError(
                f"the base model is x{base_scale}, but {sizes}; choose a x{scale} model"
                + (f" (shipped: {', '.join(shipped)})" if shipped else "") + " or a new network"
            )
        return self

    def check_finite(self) -> None:
        """Raise :class:`~napari_emsr.training.data.NonFiniteDataError` naming the volume and slice with NaN or inf."""
        from napari_emsr.training.data import check_finite

        check_finite(self.lr, self.lr_name, role="lr", index=0)
        check_finite(self.hr, self.hr_name, role="hr", index=0)

    def prepare(self) -> tuple[np.ndarray, np.ndarray, PairReport]:
        """Locate the HR field and match the intensities: ``(lr_part, hr_part, report)`` of ``prepare_pair``."""
        both = bool(self.lr_pixel_size and self.hr_pixel_size)
        return prepare_pair(
            self.lr, self.hr, lr_pixel_nm=self.lr_pixel_size if both else None,
            hr_pixel_nm=self.hr_pixel_size if both else None, scale=None if both else self.scale,
            offset=self.offset, min_score=self.min_score, match_contrast=self.match_contrast,
            register=self.register, z_step=self.z_step,
        )  # fmt: skip


def _scale_of(base: Any) -> int | None:
    """Return the scale of a base model: a network, a model file (its header only is read), or None."""
    if base is None:
        return None
    config = getattr(base, "config", None)
    if config is not None:
        return int(config.scale)
    from napari_emsr.model_file import read_model_header

    return int(read_model_header(base)[1]["config"]["scale"])


@dataclass(frozen=True)
class FineTuneJob:
    """Everything one fine-tuning run on a pair needs; validated on creation.

    Attributes
    ----------
    pair : PairSpec
        The LR / HR pair; its scale is settled here by the base model when the pixel sizes are unknown.
    out : path
        The model file to write (the best validation, by ``config.keep_by``); the last state goes next to it.
    config : TrainingConfig
        The training settings.
    base : path or EMSR, optional
        The model to start from (a file is read by the trainer and recorded as ``base_model``);
        None trains ``preset`` from random weights.
    preset : str
        The network preset without a base model.
    val_slices : str or sequence of int, optional
        Held-out HR slices (see :func:`~napari_emsr.training.data.parse_slices`); default the last ~10 %.
    resume, overwrite : bool
        Continue the run saved next to ``out``; replace an existing ``out``.
    check_noise : bool
        Check the HR reference against eq. 9 before training (a ``"noise"`` event).
    previews : bool
        After each validation, apply the saved network to an LR crop of a held-out slice (``"preview"`` events).
    provenance : mapping
        Facts for the model file (the data's names, the command line, ...); the pair's are added.
    """

    pair: PairSpec
    out: Path
    config: TrainingConfig = TrainingConfig()
    base: str | os.PathLike | Any | None = None
    preset: str = "lite"
    val_slices: str | Sequence[int] | None = None
    resume: bool = False
    overwrite: bool = False
    check_noise: bool = True
    previews: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from napari_emsr.training.data import parse_slices

        if not isinstance(self.pair, PairSpec):
            raise TypeError(f"pair must be a PairSpec, got {type(self.pair).__name__}")
        if not isinstance(self.config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(self.config).__name__}")
        if not str(self.out).strip():
            raise HintedValueError("no output model file given", Hint("out", "MODEL"))
        object.__setattr__(self, "out", Path(self.out).expanduser())
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.base is not None and getattr(self.base, "config", None) is None:
            object.__setattr__(self, "base", Path(self.base))
        parse_slices(self.val_slices, np.shape(self.pair.hr)[0])  # a bad spec is refused now, not mid-run
        object.__setattr__(self, "pair", self.pair.for_base(self.base))
        object.__setattr__(self, "provenance", dict(self.provenance))


def pair_provenance(report: PairReport) -> dict[str, Any]:
    """Return the pair's facts as the model file records them (``provenance["pair"]``)."""
    return {"offset_zyx": list(report.offset), "match_score": round(report.score, 4), "scale": report.scale,
            "gain": round(report.gain, 4), "intensity_offset": round(report.intensity_offset, 3)}  # fmt: skip


def check_reference(hr: Any, *, count: int = 4) -> NoiseChecked:
    """:func:`~napari_emsr.metrics.noise_check` on ``count`` slices spread over the HR stack.

    The data range is found by :func:`~napari_emsr.metrics.data_range.find_data_range`: that of the
    dtype (uint8: 255), or for floating-point data the max - min of the checked slices (1 for
    constant slices).
    """
    from napari_emsr.metrics import noise_check
    from napari_emsr.metrics.data_range import find_data_range

    picks = np.unique(np.linspace(0, hr.shape[0] - 1, min(count, hr.shape[0])).round().astype(int))
    stack = np.stack([np.asarray(hr[int(z)]) for z in picks])
    try:
        data_range = find_data_range(stack.dtype, lambda: stack, name="the HR reference").value
    except HintedValueError:  # constant slices: any range will do, the check then fails on its own
        data_range = 1.0
    return NoiseChecked(noise_check(stack, data_range=data_range), [int(z) for z in picks])


def checkpoint_step(path: Path) -> int | None:
    """Return the training step a model file or checkpoint was saved at (None if it says nothing)."""
    from napari_emsr.model_file import read_model_header

    steps = read_model_header(path)[1].get("provenance", {}).get("steps")
    return None if steps is None else int(steps)


def iter_locate(pair: PairSpec, *, check_noise: bool = True) -> Generator[Event, None, None]:
    """Find the HR field in the LR volume and check the HR reference, without training.

    ``pair`` needs a known scale (see :meth:`PairSpec.for_base`). Yields job ``"locate"`` events:
    ``"start"``, ``"pair"``, ``"noise"`` (when ``check_noise``), ``"done"`` with the payload
    ``(report, noise check or None)``.
    """
    clock = Clock()
    pair = pair.for_base(None)  # refuses a pair whose scale is unknown
    total = 2 if check_noise else 1

    def event(kind: str, done: int, message: str, payload: Any = None) -> Event:
        return Event("locate", kind, done, total, "stage", None, clock.elapsed(), message, payload)

    yield event("start", 0, "locating the HR field in the LR volume", pair)
    pair.check_finite()
    report = pair.prepare()[2]
    yield event("pair", 1, report.summary().splitlines()[0], report)
    checked = None
    if check_noise:
        checked = check_reference(pair.hr)
        yield event("noise", 2, "HR reference checked (eq. 9)", checked)
    yield event("done", total, "located", (report, checked))


@dataclass(frozen=True)
class DegradationPreview:
    """The degradation fitted to a pair, with a real LR crop beside one simulated from the HR crop over it.

    ``real`` and ``simulated`` are in the LR's raw intensities; ``offset`` is the crops' first LR pixel
    (z, y, x).
    """

    fit: Any
    real: np.ndarray
    simulated: np.ndarray
    offset: tuple[int, int, int]


#: the side (LR pixels) of the crops a DegradationPreview shows
PREVIEW_SIDE = 96


def iter_fit_degradation(pair: PairSpec, *, val_slices: str | None = None) -> Generator[Event, None, None]:
    """Locate the pair and fit its degradation as the fitted strategies will (their slices, scale, normalisation).

    Yields job ``"fit"`` events: ``"start"``, ``"pair"`` (the :class:`PairReport`) and ``"done"`` with
    a :class:`DegradationPreview`. The held-out slices (``val_slices``, as for training) are left out.
    """
    import torch

    from napari_emsr.config import TrainingConfig
    from napari_emsr.training.data import build_training_data

    clock = Clock()
    pair = pair.for_base(None)

    def event(kind: str, done: int, message: str, payload: Any = None) -> Event:
        return Event("fit", kind, done, 2, "stage", None, clock.elapsed(), message, payload)

    yield event("start", 0, "locating the HR field in the LR volume", pair)
    pair.check_finite()
    lr_part, hr_part, report = pair.prepare()
    yield event("pair", 1, report.summary().splitlines()[0], report)
    data = build_training_data(
        [hr_part], [lr_part], TrainingConfig(strategy="fitted"), report.scale, val_slices=val_slices
    )  # fmt: skip
    fit, lr_vol, hr_vol = data.degradation, data.lr[0], data.hr[0]  # type: ignore[index]
    z = lr_vol.slices[len(lr_vol.slices) // 2]
    h, w = lr_part.shape[1:]
    side = min(PREVIEW_SIDE, h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    s = report.scale
    hr_crop = hr_vol.crop(z, y0 * s, x0 * s, side * s)[None, None]
    simulated = fit.simulate(hr_crop, torch.Generator().manual_seed(0), jitter=False)[0, 0].numpy()
    span = lr_vol.high - lr_vol.low
    real = np.asarray(lr_part[z, y0 : y0 + side, x0 : x0 + side], dtype=np.float32)
    z_off, y_off, x_off = report.offset
    preview = DegradationPreview(fit, real, (simulated * span + lr_vol.low).astype(np.float32),
                                 (z_off + z, y_off + y0, x_off + x0))  # fmt: skip
    yield event("done", 2, fit.summary().splitlines()[1].strip(), preview)


class _PreviewCrop:
    """An LR crop of the middle held-out slice, as the trainer's validation crops are cut."""

    def __init__(self, job: FineTuneJob, lr_part: np.ndarray, report: PairReport) -> None:
        from napari_emsr.training.data import parse_slices

        held = parse_slices(job.val_slices, lr_part.shape[0])
        z = held[len(held) // 2]
        h, w = lr_part.shape[1:]
        c = min(job.config.val_crop, h, w)
        y0, x0 = (h - c) // 2, (w - c) // 2
        self.crop = np.ascontiguousarray(lr_part[z, y0 : y0 + c, x0 : x0 + c])
        z_off, y_off, x_off = report.offset
        self.offset = (z_off + z, y_off + y0, x_off + x0)
        self.scale, self.out, self.device = report.scale, job.out, job.config.device
        self.lr_pixel_size = job.pair.lr_pixel_size
        self.shown_step: int | None = None

    def render(self, step: int) -> Preview | None:
        """Return the saved network at ``step`` on the crop; None if the checkpoint holds another step."""
        from napari_emsr.model_io import load_model
        from napari_emsr.predict import super_resolve
        from napari_emsr.training.checkpoint import load_averaged_weights
        from napari_emsr.training.trainer import checkpoint_path

        path = checkpoint_path(self.out)
        if step == self.shown_step or not path.is_file() or checkpoint_step(path) != step:
            return None
        self.shown_step = step
        model = load_model(path)
        averaged = load_averaged_weights(path)
        if averaged is not None:  # a run with a moving average validates and keeps the average: show it
            model.load_state_dict(averaged)
        with warnings.catch_warnings():  # the run's own warnings are shown; the preview's would repeat them
            warnings.simplefilter("ignore")
            image = super_resolve(
                self.crop, model, device=self.device, overlap=0, tile=max(self.crop.shape),
                pixel_size=self.lr_pixel_size,
            )  # fmt: skip
        return Preview(step, image[None], self.offset, self.scale)


def iter_finetune_pair(job: FineTuneJob) -> Generator[Event, None, None]:
    """Check the inputs, align the pair, check the reference, then train; yields job ``"finetune"`` events.

    See the module's description for the events. The model file records the job's ``provenance``
    and the pair's facts (:func:`pair_provenance`).

    Raises
    ------
    OutputExistsError, FileNotFoundError
        ``out`` exists (without ``overwrite`` or ``resume``), or there is nothing to resume.
    NonFiniteDataError
        A volume holds NaN or infinite values (named, with the slice).
    PairError
        The HR field was not found (the hints say how to give its offset), or the sizes do not fit.
    """
    from napari_emsr.training.trainer import check_output, iter_finetune

    clock = Clock()
    steps = job.config.steps

    def event(kind: str, message: str, payload: Any = None) -> Event:
        return Event("finetune", kind, 0, steps, "step", None, clock.elapsed(), message, payload)

    check_output(job.out, resume=job.resume, overwrite=job.overwrite)  # before the search, which takes a while
    yield event("start", "locating the HR field in the LR volume", job)
    pair = job.pair
    pair.check_finite()  # before the pair is located and matched, which NaN or inf values would spoil
    lr_part, hr_part, report = pair.prepare()
    yield event("pair", report.summary().splitlines()[0], report)
    if job.base is None and not job.resume:
        yield event("info", f"no base model: training the '{job.preset}' preset from random weights")
    if job.check_noise:
        yield event("noise", "HR reference checked (eq. 9)", check_reference(pair.hr))
    preview = _PreviewCrop(job, lr_part, report) if job.previews else None
    z0, y0, x0 = report.offset
    field = (z0, z0 + lr_part.shape[0], y0, y0 + lr_part.shape[1], x0, x0 + lr_part.shape[2])
    unpaired = [(pair.lr, field)] if job.config.lambda_consistency > 0 else []  # the LR outside the HR field
    events = iter_finetune(
        [hr_part], [lr_part], out=job.out, config=job.config, base=job.base, preset=job.preset, unpaired_lr=unpaired,
        scale=report.scale, val_slices=job.val_slices, input_pixel_size_nm=pair.lr_pixel_size,
        provenance={**job.provenance, "pair": pair_provenance(report)}, resume=job.resume, overwrite=job.overwrite,
    )  # fmt: skip
    try:
        for trained in events:
            trained = dataclasses.replace(trained, job="finetune")
            shown = preview.render(trained.done) if preview and trained.kind in ("validation", "done") else None
            if trained.kind != "done":
                yield trained
            if shown is not None:  # after its validation; before the done event, which stays the last
                message = f"preview at step {shown.step}"
                yield dataclasses.replace(trained, kind="preview", message=message, payload=shown)
            if trained.kind == "done":
                yield trained
    finally:
        events.close()  # on Cancel: the trainer saves its last state and keeps the best model
