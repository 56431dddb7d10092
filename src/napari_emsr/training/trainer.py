"""Train or fine-tune EMSR without clean references: a generator of :class:`~napari_emsr.events.Event` s.

``iter_finetune`` runs the paper's training (section II-D and III-B-1): random patches, rot90/flip
and noise augmentation, a noisier copy y' through the same weights, loss
l1 l(f(y), x) + l2 l(f(y'), x) + l3 l(f(y), f(y')), Adam with a halving learning rate, validation on
held-out slices against the reference and against bicubic. It writes two files:

- ``out``: the best model so far (by validation SSIM + mean FRC, ``TrainingConfig.keep_by``), a normal model file;
- ``<out stem>.last.safetensors``: the last state (weights, Adam moments, RNG states, progress), for
  ``resume=True``; also loadable as a model.

Closing the generator (``gen.close()``, Cancel in napari, Ctrl-C in the CLI) stops between steps,
saves the last state and keeps the best model. ``finetune`` runs it to the end.

Events (job ``"train"``, unit ``"step"``, ``done`` = the step reached, ``total`` = the steps asked for):

- ``"info"``: a set-up note or the time budget reached (``message`` only);
- ``"step"``: after every step; payload :class:`StepStats` (losses, learning rate, speed);
- ``"validation"``: after every validation; payload :class:`Validation` (the scores of the model
  and of bicubic, the best so far, whether this one is the new best);
- ``"done"``: the last event; payload :class:`TrainResult` (the files written, the best record).

Errors say what to do as :class:`~napari_emsr.errors.Hint` s, which each front end phrases: an
existing output (:class:`~napari_emsr.errors.OutputExistsError`), a run that diverged
(:class:`TrainingDivergedError`), a full disk (:class:`TrainingWriteError`).

The saved last state is always one an uninterrupted run passes through, so that resuming from it
reaches the same weights: a step is a transaction (an exception before the weight update, e.g. a
KeyboardInterrupt while patches are drawn, rewinds the random generators to the start of the step),
and in the main thread Ctrl-C (SIGINT) is held back while the weights are updated, validated and
saved, and raised right after.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Mapping, Sequence

import numpy as np
import torch

from napari_emsr.config import EMSRConfig, TrainingConfig
from napari_emsr.device import resolve_precision, select_device
from napari_emsr.errors import EMSRError, Hint, HintedValueError, OutputExistsError, python_option
from napari_emsr.events import Event
from napari_emsr.model.emsr import EMSR, build_emsr
from napari_emsr.model_io import ModelWriteError, load_model, save_model
from napari_emsr.predict.halo import effective_radius
from napari_emsr.training.checkpoint import load_averaged_weights, load_checkpoint, save_checkpoint
from napari_emsr.training.data import TrainingData, ValidationSet, build_training_data
from napari_emsr.training.losses import emsr_loss, pixel_loss
from napari_emsr.training.sampler import PatchSampler, noisier

__all__ = [
    "StepStats",
    "Validation",
    "TrainResult",
    "TrainingDivergedError",
    "TrainingWriteError",
    "iter_finetune",
    "finetune",
    "checkpoint_path",
    "check_output",
    "training_precision",
    "validate",
    "transfer_to_scale",
]


@dataclass(frozen=True)
class StepStats:
    """Payload of a ``"step"`` event: the step's loss terms, its learning rate, the speed of this run."""

    losses: Mapping[str, float]
    learning_rate: float
    steps_per_s: float | None


@dataclass(frozen=True)
class Validation:
    """Payload of a ``"validation"`` event.

    Attributes
    ----------
    step : int
        The step validated.
    scores : mapping
        ``psnr``, ``ssim``, ``frc_mean`` of the model and, under ``"bicubic"``, of bicubic up-sampling.
    best : mapping
        The best validation so far (``step``, the scores, ``"bicubic"``); it is in the model file.
    improved : bool
        Whether this validation is the new best (the model file was rewritten).
    """

    step: int
    scores: Mapping[str, Any]
    best: Mapping[str, Any]
    improved: bool


@dataclass(frozen=True)
class TrainResult:
    """Payload of the ``"done"`` event: what a run wrote.

    Attributes
    ----------
    model : Path
        The best model (by ``TrainingConfig.keep_by``: SSIM + mean FRC unless set).
    last_state : Path
        The last state, for ``resume=True`` (also a loadable model).
    best : mapping
        The best validation record (``step``, scores, ``"bicubic"``).
    steps : int
        The steps made in all (a resumed run counts the earlier ones).
    """

    model: Path
    last_state: Path
    best: Mapping[str, Any]
    steps: int


class TrainingDivergedError(HintedValueError, FloatingPointError):
    """The loss stopped being finite: the optimisation diverged (the data were checked to be finite)."""


class TrainingWriteError(EMSRError, ModelWriteError):
    """A model file or the last state could not be written (e.g. the disk is full); nothing under its name changed.

    The hints are steps to take in order: free some space, then (when a last state of the run is
    on disk) resume from it. ``last_state`` is that file, or None.
    """

    def __init__(self, cause: ModelWriteError, last_state: Path | None) -> None:
        ModelWriteError.__init__(self, cause.path, cause)
        hints = [Hint("free_space")]
        if last_state is not None:
            hints.append(Hint("resume", True, f"to continue from the last state saved (in {last_state})"))
        self.last_state = last_state
        self.detail, self.hints = str(cause), tuple(hints)
        self.args = (str(self),)

    def phrased(self, option: Callable[[Hint], str]) -> str:
        """Return the message with the hints, as steps in order, phrased by ``option``."""
        steps = [" ".join(part for part in (option(h), h.purpose) if part) for h in self.hints]
        return f"{self.detail}: {', then '.join(steps)}"

    def __str__(self) -> str:
        return self.phrased(python_option)


#: LR pixels at each border of a patch left out of the degradation-consistency term (tile-edge effects)
CONSISTENCY_BORDER = 3


def degradation_consistency(out: torch.Tensor, lr: torch.Tensor, degradation: Any, norm: str) -> torch.Tensor:
    """``l(D(f(y)), y)``: the network's output on LR patches without HR, degraded back, against them."""
    back = degradation.forward(out)
    c = CONSISTENCY_BORDER
    return pixel_loss(back[..., c:-c, c:-c], lr[..., c:-c, c:-c], norm)


def checkpoint_path(out: str | os.PathLike) -> Path:
    """Where the resumable last state of a run writing ``out`` lives."""
    out = Path(out)
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(stem + ".last.safetensors")


def check_output(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
    """Refuse a run writing ``out`` that would replace a file silently, or resume nothing; return the checkpoint.

    Raises
    ------
    FileNotFoundError
        ``resume`` without a last state next to ``out``, or ``out``'s folder does not exist.
    OutputExistsError
        ``out`` exists and neither ``overwrite`` nor ``resume`` is set.
    """
    out = Path(out)
    ckpt = checkpoint_path(out)
    if resume and not ckpt.exists():
        raise FileNotFoundError(f"cannot resume: no checkpoint {ckpt} (it is written while training into {out})")
    if not resume and out.exists() and not overwrite:
        raise OutputExistsError(
            f"{out} exists", Hint("overwrite", True, "to replace it"), Hint("resume", True, "to continue its run")
        )
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent} does not exist; create the folder first")
    return ckpt


@torch.inference_mode()
def validate(model: EMSR, val: ValidationSet, device: torch.device) -> dict[str, Any]:
    """PSNR, SSIM, mean FRC of the model and of bicubic on the validation crops (0..1 scale)."""
    from napari_emsr.metrics import frc_mean, psnr, ssim

    was_training = model.training
    model.eval()
    pred = model(val.lr.to(device)).clamp(0, 1)[:, 0].float().cpu().numpy()
    model.train(was_training)

    def scores(images: np.ndarray) -> dict[str, float]:
        pairs = list(zip(val.hr, images, strict=True))
        return {
            "psnr": float(np.mean([psnr(r, p, data_range=1.0) for r, p in pairs])),
            "ssim": float(np.mean([ssim(r, p, data_range=1.0) for r, p in pairs])),
            "frc_mean": float(np.mean([frc_mean(r, p) for r, p in pairs])),
        }

    return {**scores(pred), "bicubic": scores(val.bicubic)}


def keep_score(scores: Mapping[str, Any], keep_by: str) -> float:
    """Return the number a validation is ranked by (higher is better) under ``TrainingConfig.keep_by``.

    ``"ssim+frc"``: SSIM + mean FRC (both 0..1 and of like spread between checkpoints of one run);
    ``"ssim"``: SSIM alone.
    """
    if keep_by == "ssim":
        return float(scores["ssim"])
    if keep_by == "ssim+frc":
        return float(scores["ssim"]) + float(scores["frc_mean"])
    raise ValueError(f"keep_by must be 'ssim+frc' or 'ssim', got {keep_by!r}")


def _start_model(base, preset: str, scale: int | None, seed: int, *, transfer_scale: bool = False) -> EMSR:
    if base is not None:
        model = base if isinstance(base, EMSR) else load_model(base)
        if scale is not None and scale != model.config.scale:
            if not transfer_scale:
                raise ValueError(f"the base model is x{model.config.scale}, but the data need x{scale}")
            torch.manual_seed(seed)
            model = transfer_to_scale(model, scale)
        return model
    torch.manual_seed(seed)
    return build_emsr(EMSRConfig.preset(preset, **({"scale": scale} if scale else {})))


def transfer_to_scale(model: EMSR, scale: int, **changes: Any) -> EMSR:
    """Return a network of ``model``'s architecture at another ``scale``, starting from its learnt weights.

    Everything but the pixel-shuffle convolution (whose width is C * s * s) does not depend on the
    scale and is copied; that one convolution starts from random weights. ``changes``: other
    config values (e.g. ``global_residual=1``). The result is an initialisation for training, not a
    trained model: its metadata says it is untrained.
    """
    target = build_emsr(model.config.replace(scale=scale, **changes))
    source = model.state_dict()
    state = target.state_dict()
    kept = {k: v for k, v in source.items() if k in state and state[k].shape == v.shape}
    state.update(kept)
    target.load_state_dict(state)
    target.metadata = model.metadata.updated(trained=False)
    return target


@contextmanager
def _sigint_held():
    """Hold back Ctrl-C (SIGINT) for the block and raise KeyboardInterrupt after it, if one came.

    Only where Python's default handler is in place, in the main thread (signals are delivered
    there; elsewhere, e.g. napari's worker thread, this does nothing).
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def learning_rate_at(config: TrainingConfig, step: int) -> float:
    """Return the learning rate of the step after ``step`` steps, under the config's schedule."""
    if config.schedule == "cosine":
        progress = min(step / max(config.steps - 1, 1), 1.0)
        floor = config.learning_rate * config.final_lr_fraction
        return floor + 0.5 * (config.learning_rate - floor) * (1.0 + math.cos(math.pi * progress))
    return config.learning_rate * 0.5 ** (step // config.halve_every)


class _Run:
    """State of one training run; the generator below drives it."""

    def __init__(self, model, config, data: TrainingData, out: Path, device, provenance, start_progress=None):
        self.model, self.config, self.data, self.out, self.device = model, config, data, out, device
        #: the moving average of the weights (config.ema), what is validated and kept; else the model itself
        self.averaged: EMSR | None = None
        if config.ema > 0:
            self.averaged = copy.deepcopy(model).eval().requires_grad_(False)
        self.ckpt = checkpoint_path(out)
        self.sampler = PatchSampler(data.hr, data.lr, model.config.scale, config.patch, config.strategy,
                                    config.input_noise, seed=config.seed, balance=config.balance,
                                    degradation=data.degradation, fitted_share=config.fitted_share,
                                    zoom=config.zoom)
        self.noise_gen = torch.Generator().manual_seed(config.seed + 1)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        progress = start_progress or {}
        self.step = int(progress.get("step", 0))
        self.elapsed_before = float(progress.get("elapsed_s", 0.0))
        self.best = progress.get("best")
        self.history: list[dict] = list(progress.get("history", []))
        self.provenance = provenance
        self.saved_step = self.step
        #: whether a last state of this run (or of the run it resumes) is on disk
        self.has_last_state = start_progress is not None
        #: True while the optimizer updates the weights: the state is then between two steps
        self.updating = False

    def lr_at(self, step: int) -> float:
        return learning_rate_at(self.config, step)

    def train_step(self) -> dict[str, float]:
        """Take one optimisation step, as a transaction.

        On an exception before the weight update the random generators are rewound, so that the
        state is again the one after the previous step.
        """
        generators = (self.sampler.generator, self.noise_gen)
        states = [g.get_state() for g in generators]
        try:
            loss, terms = self._loss()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        except BaseException:
            for g, state in zip(generators, states, strict=True):
                g.set_state(state)
            raise
        self.updating = True  # an exception from here on leaves the weights between two steps
        self.optimizer.step()
        self.step += 1
        if self.averaged is not None:
            self._update_average()
        self.updating = False
        return terms

    @property
    def kept(self) -> EMSR:
        """The weights validated and saved as the run's model: the moving average if there is one."""
        return self.model if self.averaged is None else self.averaged

    @torch.no_grad()
    def _update_average(self) -> None:
        assert self.averaged is not None
        decay = min(self.config.ema, self.step / (self.step + 9))  # (1 + s) / (10 + s) for the step just taken
        average = list(self.averaged.state_dict().values())
        current = list(self.model.state_dict().values())
        floats = [(a, c) for a, c in zip(average, current, strict=True) if a.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1.0 - decay)
        for a, c in zip(average, current, strict=True):
            if not a.is_floating_point():
                a.copy_(c)

    def _loss(self) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        lr_now = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_now
        y, x = self.sampler.sample(cfg.batch)
        if cfg.noisier_branch:
            y = torch.cat([y, noisier(y, cfg.noisier_noise, self.noise_gen)])
        paired = y.shape[0]
        unpaired = None
        if cfg.lambda_consistency > 0:  # LR patches without HR, through the same forward pass
            unpaired = self.sampler.sample_unpaired(self.data.unpaired, cfg.batch, cfg.patch)
            y = torch.cat([y, unpaired])
        y = y.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            out = self.model(y)
        out = out.float()  # the loss in fp32
        b = cfg.batch
        out_y, out_noisier = (out[:b], out[b:paired]) if cfg.noisier_branch else (out[:b], None)
        loss, terms = emsr_loss(out_y, x.to(self.device), out_noisier, norm=cfg.loss, weights=cfg.weights)
        if unpaired is not None:
            term = degradation_consistency(out[paired:], unpaired.to(self.device), self.data.degradation, cfg.loss)
            loss = loss + cfg.lambda_consistency * term
            terms["degradation"] = term.item()
            terms["total"] = loss.item()
        if not torch.isfinite(loss):
            # the data were checked to be finite before training: the optimisation diverged
            raise TrainingDivergedError(
                f"the loss became {float(loss.detach())} at step {self.step + 1}: training diverged",
                Hint("learning_rate", float(f"{cfg.learning_rate / 10:.3g}"), "and start again"),
            )
        return loss, terms

    def progress(self, elapsed: float) -> dict[str, Any]:
        return {"step": self.step, "elapsed_s": elapsed, "best": self.best, "history": self.history,
                "training": self.config.to_dict()}

    def metadata(self, elapsed: float, *, measure_radius: bool = False) -> dict[str, Any]:
        prov = {**self.provenance, "steps": self.step, "wall_time_s": round(elapsed, 1),
                "best_validation": self.best, "validation": self.data.validation.description}
        meta = {"trained": True, "normalization": self.data.normalization.to_dict(), "provenance": prov}
        if measure_radius:  # the default tile halo for this model (see napari_emsr.predict.halo)
            sample = self.data.validation.lr[0, 0].numpy()
            meta["effective_radius_px"] = effective_radius(self.kept, sample, device=self.device)
        return meta

    def save_last(self, elapsed: float) -> None:
        info = self.model.metadata.updated(**self.metadata(elapsed))
        save_checkpoint(self.ckpt, self.model, info, self.optimizer,
                        {"sampler": self.sampler.generator, "noise": self.noise_gen}, self.progress(elapsed),
                        averaged=self.averaged)  # fmt: skip
        self.saved_step = self.step
        self.has_last_state = True

    def keep_on_exit(self, elapsed: float) -> None:
        """Save, after an early stop, the last state and, if no validation has made one yet, a best model.

        That best model is not recorded as the run's best, so that a resumed run validates, keeps
        and reports exactly what an uninterrupted run does.
        """
        if self.best is None:
            scores = validate(self.kept, self.data.validation, self.device)
            meta = self.metadata(elapsed, measure_radius=True)
            meta["provenance"]["best_validation"] = {"step": self.step, **scores}
            save_model(self.kept, self.out, overwrite=True, **meta)
        self.save_last(elapsed)

    def validate_and_keep(self, elapsed: float) -> tuple[dict, bool]:
        scores = validate(self.kept, self.data.validation, self.device)
        keep_by = self.config.keep_by
        improved = self.best is None or keep_score(scores, keep_by) > keep_score(self.best, keep_by)
        self.history.append({"step": self.step, **{k: v for k, v in scores.items() if k != "bicubic"}})
        if improved:
            self.best = {"step": self.step, **{k: v for k, v in scores.items() if k != "bicubic"},
                         "bicubic": scores["bicubic"]}
            save_model(self.kept, self.out, overwrite=True, **self.metadata(elapsed, measure_radius=True))
        return scores, improved

    def restore(self, optimizer_state, generators, averaged: dict[str, torch.Tensor] | None = None) -> None:
        self.optimizer.load_state_dict(optimizer_state)
        if self.averaged is not None:
            # a run resumed without an average on disk (it had none) starts one from the weights it resumes
            if averaged is not None:
                self.averaged.load_state_dict(averaged)
        self.sampler.generator.set_state(generators["sampler"])
        self.noise_gen.set_state(generators["noise"])


def iter_finetune(
    hr: Sequence,
    lr: Sequence | None = None,
    *,
    out: str | os.PathLike,
    config: TrainingConfig | None = None,
    base: str | os.PathLike | EMSR | None = None,
    preset: str = "paper",
    scale: int | None = None,
    val_slices=None,
    input_pixel_size_nm: float | None = None,
    provenance: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    transfer_scale: bool = False,
    degradation: Any = None,
    unpaired_lr: Sequence = (),
) -> Generator[Event, None, None]:
    """Train (``base=None``: from random weights of ``preset``) or fine-tune ``base`` on the volumes.

    Parameters
    ----------
    hr : sequence of array-like (z, y, x)
        Reference volumes (noisy HR). For ``real``/``denoised``, already aligned with ``lr``: LR pixel
        (z, i, j) covers HR pixels (z, s*i .. s*i+s, s*j .. s*j+s) (see ``training.pairs.prepare_pair``).
    lr : sequence of array-like (z, y, x), optional
        LR volumes for the ``real`` and ``denoised`` strategies.
    out : path
        The model file to write (the best validation by ``config.keep_by``); the last state goes next to it.
    config : TrainingConfig
        Strategy, steps, minutes, loss, lambdas, noise ranges, validation cadence, seed, device.
    base, preset, scale
        Start from this model (file or network), or build ``preset`` at ``scale``.
    val_slices
        Held-out slices of the first volume (see ``parse_slices``); default the last ~10 %.
    input_pixel_size_nm : float, optional
        LR pixel size the model is trained for; stored in the model file.
    provenance : dict, optional
        Facts to store (data and licence, command line); steps, time, hardware, metrics are added.
    resume : bool
        Continue from ``<out stem>.last.safetensors``.
    overwrite : bool
        Replace an existing ``out`` when not resuming.
    transfer_scale : bool
        When ``base`` is at another scale than ``scale``, start from its weights anyway (all but the
        pixel-shuffle convolution; see :func:`transfer_to_scale`) instead of refusing.
    degradation : FittedDegradation, optional
        For the ``fitted`` and ``real+fitted`` strategies: the degradation to simulate LR inputs
        with; by default it is fitted to the first pair's training slices (a ``"degradation"`` event
        reports it before the first step).
    unpaired_lr : sequence of (array-like, region or None)
        With ``config.lambda_consistency``: LR volumes without HR for the degradation-consistency
        term, each with a region (z0, z1, y0, y1, x0, x1) to leave out (the HR field); default: the
        LR volumes of the pairs.

    Yields
    ------
    Event
        Job ``"train"``: ``"info"`` (set-up notes), ``"step"`` after every step (:class:`StepStats`),
        ``"validation"`` (:class:`Validation`), ``"done"`` at the end (:class:`TrainResult`); see
        the module's description.

    Raises
    ------
    OutputExistsError, FileNotFoundError
        See :func:`check_output`.
    TrainingDivergedError
        The loss became NaN or infinite.
    TrainingWriteError
        A file could not be written (e.g. the disk is full).
    """
    config = config or TrainingConfig()
    out = Path(out)
    ckpt = check_output(out, resume=resume, overwrite=overwrite)
    device = select_device(config.device)
    progress, optimizer_state, generators, averaged = None, None, None, None
    if resume:
        model, optimizer_state, generators, progress = load_checkpoint(ckpt)
        averaged = load_averaged_weights(ckpt)
        config = TrainingConfig.from_dict({**progress["training"], **_resumable(config)})
    else:
        model = _start_model(base, preset, scale, config.seed, transfer_scale=transfer_scale)
    config, precision_note = training_precision(config, device)
    # torch's stubs omit Module.to(memory_format=...), which the runtime accepts
    model.to(device).to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    keep_norm = base is not None or resume  # a trained model keeps the intensity mapping it learnt
    data = build_training_data(list(hr), None if lr is None else list(lr), config, model.config.scale,
                               val_slices=val_slices, normalization=model.metadata.normalization if keep_norm else None,
                               degradation=degradation, unpaired_lr=unpaired_lr)
    prov = dict(progress and model.metadata.provenance or {})
    prov.update(provenance or {})
    prov.update(strategy=config.strategy, loss=config.loss, lambdas=list(config.weights),
                noisier_branch=config.noisier_branch, precision=config.precision, learning_rate=config.learning_rate,
                schedule=config.schedule, ema=config.ema, hardware=_hardware(device),
                torch=torch.__version__)  # fmt: skip
    if base is not None and not resume:
        prov["base_model"] = (base.metadata.name or "in-memory model") if isinstance(base, EMSR) else str(base)
    axial = config.strategy == "axial"
    if axial:  # how z is sampled: what the isotropic reconstruction checks a volume against
        prov["section_sampling"] = data.degradation.to_dict()
    elif data.degradation is not None:
        fitted = data.degradation.to_dict()
        fitted.pop("goodness", None)  # the curves are for display; the parameters are what the model learnt from
        prov["degradation"] = fitted
    if input_pixel_size_nm:
        model.metadata = model.metadata.updated(input_pixel_size_nm=input_pixel_size_nm)
    run = _Run(model, config, data, out, device, prov, progress)
    if config.strategy == "synthetic-em":  # the scale augmentation's range: the pixel sizes the model saw
        prov["zoom"] = list(run.sampler.zoom_range)
    if resume:
        run.restore(optimizer_state, generators, averaged)
    yield Event("train", "info", run.step, config.steps, "step", None, 0.0, precision_note)
    if data.degradation is not None and not axial:  # what the simulated inputs follow, for the user to check
        summary = data.degradation.summary()
        yield Event("train", "degradation", run.step, config.steps, "step", None, 0.0, summary, data.degradation)
    yield from _loop(run, data)


def training_precision(config: TrainingConfig, device: torch.device) -> tuple[TrainingConfig, str]:
    """Return ``config`` with its precision decided for ``device`` (``"auto"`` resolved), and a line saying why.

    ``"auto"`` takes bf16 on GPUs that have it and on CPUs with AMX-BF16 (about 1.6x the steps per
    second of fp32 there), fp32 elsewhere. bf16 asked for on a CPU without AMX-BF16 is kept (the
    user asked), and the line says that it is emulated there and slower than fp32.

    Raises
    ------
    ValueError
        bf16 asked for on a GPU without it.
    """
    used, why = resolve_precision(config.precision, device, training=True)
    why = "as set" if why == "asked" else why  # the default is no one's request
    return config.replace(precision=used), f"precision: {used} ({why})"


def _resumable(config: TrainingConfig) -> dict[str, Any]:
    """Return the settings a resumed run may change: how long it runs and where."""
    return {"steps": config.steps, "minutes": config.minutes, "budget": config.budget, "device": config.device,
            "precision": config.precision}  # fmt: skip


#: steps timed before a budgeted run (TrainingConfig.budget) sets its number of steps
CALIBRATION_STEPS = 20
#: share of the budget a budgeted run plans for; the rest absorbs validations and timing noise
BUDGET_SHARE = 0.95
#: a budgeted run plans again every this many steps, from the step time of the latest ones, so that a
#: slow start (another program busy during the calibration) or a slowdown does not leave the budget
#: unused or overrun
REPLAN_EVERY = 50


def _schedule_text(cfg: TrainingConfig) -> str:
    if cfg.schedule == "cosine":
        floor = cfg.learning_rate * cfg.final_lr_fraction
        return f"learning rate {cfg.learning_rate:g} down to {floor:.2g} on a cosine"
    if cfg.halve_every >= cfg.steps:
        return f"learning rate {cfg.learning_rate:g} throughout"
    return f"learning rate {cfg.learning_rate:g} halved every {cfg.halve_every} steps"


def _fit_to_budget(run: _Run, seconds: float, per_step: float) -> TrainingConfig:
    """Return the run's config with ``steps`` set to fill its time budget at ``per_step`` seconds a step.

    ``seconds``: the time used so far. ``halve_every`` follows the steps in proportion until the
    learning rate has been halved once (from then on it is kept, so the rate never goes back up).
    """
    cfg = run.config
    assert cfg.minutes is not None  # a budget needs minutes (TrainingConfig checks it)
    left = BUDGET_SHARE * 60 * cfg.minutes - seconds
    total = max(run.step + 1, run.step + int(left / max(per_step, 1e-9)))
    halve = cfg.halve_every if run.step >= cfg.halve_every else max(1, round(cfg.halve_every * total / cfg.steps))
    return cfg.replace(steps=total, halve_every=halve, budget=False)


def _loop(run: _Run, data: TrainingData) -> Iterator[Event]:
    cfg = run.config
    start = time.perf_counter()
    first_step = run.step
    elapsed = lambda: run.elapsed_before + time.perf_counter() - start  # noqa: E731

    def event(kind: str, message: str = "", payload: Any = None, eta: float | None = None) -> Event:
        return Event("train", kind, run.step, cfg.steps, "step", eta, elapsed(), message, payload)

    def validated(scores: dict[str, Any], improved: bool) -> Event:
        assert run.best is not None  # a validation keeps one
        message = f"step {run.step}/{cfg.steps}: validation SSIM {scores['ssim']:.4f}"
        return event("validation", message + ("; new best model saved" if improved else ""),
                     Validation(run.step, scores, dict(run.best), improved))

    for note in data.notes:
        yield event("info", note)
    yield event("info", f"validation: {data.validation.description}")
    budgeted, planned_at = cfg.budget, (first_step, start)  # a budget: steps planned (and re-planned) from time
    announced = cfg.steps
    try:
        while run.step < cfg.steps:
            if cfg.minutes is not None and time.perf_counter() - start > 60 * cfg.minutes:
                yield event("info", f"time budget of {cfg.minutes:g} min reached")
                break
            with _sigint_held():
                terms = run.train_step()
            since = run.step - planned_at[0]
            # at least four re-plans over what is left, so a short plan made in a slow moment is revised
            every = CALIBRATION_STEPS if cfg.budget else max(1, min(REPLAN_EVERY, (cfg.steps - planned_at[0]) // 4))
            if budgeted and since >= every:
                now = time.perf_counter()
                first = cfg.budget
                run.config = cfg = _fit_to_budget(run, now - start, (now - planned_at[1]) / since)
                planned_at = (run.step, now)
                if first:
                    announced = cfg.steps
                    yield event("info", f"{cfg.minutes:g} min budget: {cfg.steps} steps at the measured step time "
                                        f"({_schedule_text(cfg)})")  # fmt: skip
                elif abs(cfg.steps - announced) > 0.05 * announced:  # said again when 5 % off what was said
                    yield event("info", f"{cfg.minutes:g} min budget: {cfg.steps} steps at the latest step time "
                                        f"(was {announced})")  # fmt: skip
                    announced = cfg.steps
            rate = (run.step - first_step) / max(time.perf_counter() - start, 1e-9)
            eta = (cfg.steps - run.step) / rate if rate > 0 else None
            if cfg.minutes is not None:
                eta = min(eta or np.inf, 60 * cfg.minutes - (time.perf_counter() - start))
            stats = StepStats(terms, run.lr_at(run.step - 1), rate)
            yield event("step", f"step {run.step}/{cfg.steps}, loss {terms['total']:.4f}", stats, eta)
            if run.step % cfg.val_every == 0:
                with _sigint_held():
                    scores, improved = run.validate_and_keep(elapsed())
                    run.save_last(elapsed())
                yield validated(scores, improved)
        if run.best is None or run.history[-1]["step"] != run.step:
            with _sigint_held():
                scores, improved = run.validate_and_keep(elapsed())
                run.save_last(elapsed())
            yield validated(scores, improved)
        with _sigint_held():
            if run.step != run.saved_step:
                run.save_last(elapsed())
        assert run.best is not None  # the final validation above keeps one
        result = TrainResult(run.out, run.ckpt, dict(run.best), run.step)
        yield event("done", f"best model (step {run.best['step']}) in {run.out}", result, 0.0)
    except BaseException as exc:
        # Stopped early (closed, Ctrl-C, an error): keep what was learnt, unless the weights are between
        # two steps or writing is what failed (then the files of the last save stand: a resumable state).
        # No yield is allowed here.
        if isinstance(exc, ModelWriteError) and not isinstance(exc, TrainingWriteError):
            raise TrainingWriteError(exc, run.ckpt if run.has_last_state else None) from exc
        if run.step != run.saved_step and not run.updating and not isinstance(exc, OSError):
            try:
                with _sigint_held():
                    run.keep_on_exit(elapsed())
            except OSError as failed:
                if isinstance(exc, (GeneratorExit, KeyboardInterrupt)):
                    # e.g. the disk is full: say so, rather than "interrupted"
                    if isinstance(failed, ModelWriteError):
                        raise TrainingWriteError(failed, run.ckpt if run.has_last_state else None) from None
                    raise failed from None
                if hasattr(exc, "add_note"):  # Python >= 3.11
                    exc.add_note(f"the last training state could not be saved: {failed}")
        raise


def finetune(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """Run :func:`iter_finetune` to the end; returns the best validation scores (with bicubic's)."""
    best = None
    for event in iter_finetune(*args, **kwargs):
        if event.kind == "done":
            best = dict(event.payload.best)
    return best
