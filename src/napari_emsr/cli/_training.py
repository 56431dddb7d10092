"""Options and progress display shared by ``emsr train`` and ``emsr finetune``."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from typing import Any, Iterator, Mapping

from napari_emsr.cli._progress import Writer, cli_message, drive
from napari_emsr.config import KEEP_BY, STRATEGIES, ZOOM_LIMITS, TrainingConfig
from napari_emsr.events import Event

__all__ = ["numbers", "lambdas", "zoom_range", "add_common", "training_config", "command_line", "ValidationTable",
           "run_training"]  # fmt: skip


def numbers(cast: type, example: str, meaning: str, *, count: int = 3, minimum: float | None = None):
    """Return an argparse type for ``count`` comma-separated numbers, e.g. ``1,1,1`` (each >= ``minimum``)."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(cast(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"expected {meaning}, e.g. {example}; got {text!r}")
        if minimum is not None and any(not v >= minimum for v in values):
            raise argparse.ArgumentTypeError(f"expected {meaning}, each >= {minimum:g}; got {text!r}")
        return values

    return parse


def lambdas(text: str) -> tuple[float, float, float]:
    """``--lambdas``: three finite weights, lambda_1 > 0 (the data term), lambda_2 and lambda_3 >= 0."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three weights, e.g. 1,1,1; got {text!r}")
    terms = ("l(f(y), x)", "l(f(y'), x)", "l(f(y), f(y'))")
    for i, (value, term) in enumerate(zip(values, terms, strict=False), 1):
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"lambda_{i} must be a finite number, got {value:g}")
        if i == 1 and not value > 0:
            raise argparse.ArgumentTypeError(
                f"lambda_1 (the weight of {term}) must be > 0, got {value:g}: without it the network never "
                "learns from the reference"
            )
        if value < 0:
            raise argparse.ArgumentTypeError(f"lambda_{i} must be >= 0, got {value:g} (the weight of {term})")
    return values


_ZOOM_PAIR = numbers(float, "1,1.6", "two zoom factors LOW,HIGH", count=2)


def zoom_range(text: str) -> tuple[float, float]:
    """``--zoom``: the synthetic-em scale augmentation's range, two factors LOW,HIGH within ``ZOOM_LIMITS``."""
    low, high = _ZOOM_PAIR(text)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise argparse.ArgumentTypeError(f"expected two zoom factors LOW,HIGH, e.g. 1,1.6; got {text!r}")
    least, most = ZOOM_LIMITS
    if not least <= low <= high <= most:
        raise argparse.ArgumentTypeError(f"expected {least:g} <= LOW <= HIGH <= {most:g}, got {text!r}")
    return low, high


def add_common(p: argparse.ArgumentParser, *, default_strategy: str, default_steps: int) -> None:
    p.add_argument("--out", required=True, metavar="MODEL",
                   help="model file to write (.safetensors); the best validation by --keep-by")
    p.add_argument("--strategy", choices=[s for s in STRATEGIES if s != "axial"],  # axial: emsr isotropic
                   default=default_strategy,
                   help=f"training strategy (default: {default_strategy}); fitted and real+fitted simulate LR "
                        "inputs through the degradation fitted to the pair (docs/training.md)")
    p.add_argument("--fitted-share", type=float, default=0.5, metavar="F",
                   help="with --strategy real+fitted: the share of patches with simulated inputs (default: 0.5)")
    p.add_argument("--lambda-consistency", type=float, default=0.0, metavar="W",
                   help="with a fitted strategy: weight of l(D(f(y)), y) on LR patches without HR (the LR volume "
                        "outside the HR field; D the fitted degradation) (default: 0, off)")
    p.add_argument("--zoom", type=zoom_range, default=None, metavar="LOW,HIGH",
                   help="with --strategy synthetic-em: the range of the scale augmentation's zoom, drawn "
                        "log-uniformly per patch; above 1 shows coarser HR pixels, below 1 finer, interpolated "
                        "ones (default: 0.75,1.6; docs/training.md)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"optimisation steps (default: {default_steps}; with --minutes alone, as many as fit)")
    p.add_argument("--minutes", type=float,
                   help="time budget in minutes: alone, the run plans as many steps as fit (from the measured step "
                        "time, learning-rate schedule scaled to match); with --steps, whichever ends first")
    p.set_defaults(default_steps=default_steps)
    p.add_argument("--loss", choices=["l1", "l2"], default="l1", help="pixel loss (default: l1)")
    p.add_argument("--lambdas", type=lambdas, default=(1.0, 1.0, 1.0), metavar="L1,L2,L3",
                   help="weights of l(f(y),x), l(f(y'),x), l(f(y),f(y')) (default: 1,1,1)")
    p.add_argument("--no-noisier", action="store_true", help="train without the noisier copy y' (plain supervised)")
    p.add_argument("--batch", type=int, default=2, help="patches per step (default: 2, as the paper)")
    p.add_argument("--patch", type=int, default=48, help="LR patch size in pixels (default: 48)")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="initial Adam learning rate (default: 1e-4)")
    p.add_argument("--halve-every", type=int, default=50_000,
                   help="with --schedule step: halve the learning rate every N steps (default: 50000)")
    p.add_argument("--schedule", choices=["step", "cosine"], default="step",
                   help="learning-rate schedule: step (halved every --halve-every steps, as the paper) or cosine "
                        "(down to 1%% of --learning-rate over the run; with --minutes alone, over the steps that fit) "
                        "(default: step)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep a moving average of the weights with this decay (e.g. 0.995) and validate and save "
                        "the average instead of the last weights (default: 0, none)")
    p.add_argument("--val-slices", metavar="SPEC",
                   help="held-out slices of the first volume: last:10, first:5, 40:50 or 3,7,9 (default: last 10%%)")
    p.add_argument("--val-every", type=int, default=250, help="validate every N steps (default: 250)")
    p.add_argument("--keep-by", choices=list(KEEP_BY), default="ssim+frc",
                   help="which validation's model is kept: the highest SSIM + mean FRC, or SSIM alone "
                        "(default: ssim+frc)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16 autocast for the network's passes (loss and weights stay fp32); faster on CPUs with "
                        "AMX-BF16 and recent GPUs, emulated and slower elsewhere; auto: bf16 where it is faster, "
                        "else fp32 (default: auto)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its .last.safetensors checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def training_config(args: argparse.Namespace) -> TrainingConfig:
    return TrainingConfig(
        strategy=args.strategy, steps=args.default_steps if args.steps is None else args.steps, minutes=args.minutes,
        budget=args.minutes is not None and args.steps is None, batch=args.batch, patch=args.patch,
        learning_rate=args.learning_rate, halve_every=args.halve_every, schedule=args.schedule, ema=args.ema,
        loss=args.loss, weights=args.lambdas,
        noisier_branch=not args.no_noisier, val_every=args.val_every, keep_by=args.keep_by, seed=args.seed,
        device=args.device,
        precision=args.precision, fitted_share=args.fitted_share, lambda_consistency=args.lambda_consistency,
        zoom=args.zoom,
    )


def command_line(args: argparse.Namespace) -> str:
    """Return the command as typed, for the model's provenance."""
    return "emsr " + " ".join(shlex.quote(a) for a in args.argv)


def _row(name: str, scores: Mapping[str, Any]) -> str:
    return f"  {name:<22}{scores['psnr']:>8.2f}{scores['ssim']:>8.4f}{scores['frc_mean']:>10.4f}"


class ValidationTable:
    """What ``emsr train`` and ``emsr finetune`` show beside the progress bar, and the table at the end.

    :meth:`on_event` is :func:`~napari_emsr.cli._progress.drive`'s callback: it writes the pair found
    (on standard output, as a result) and a line per validation; :meth:`print` prints the validation
    table (standard output) once the run is done.
    """

    def __init__(self) -> None:
        self.history: list[Any] = []
        self.best: Mapping[str, Any] | None = None

    def on_event(self, event: Event, write: Writer) -> None:
        """Show one training event (``write`` prints a line without breaking the bar)."""
        if event.kind in ("pair", "degradation"):
            from tqdm import tqdm

            tqdm.write(event.payload.summary(), file=sys.stdout)
        elif event.kind == "validation":
            v = event.payload
            s = v.scores
            self.history.append(v)
            self.best = v.best
            write(f"step {v.step}: SSIM {s['ssim']:.4f} PSNR {s['psnr']:.2f} FRC {s['frc_mean']:.4f} "
                  f"(bicubic SSIM {s['bicubic']['ssim']:.4f})" + (" new best model saved" if v.improved else ""))
        elif event.kind == "done":
            self.best = event.payload.best

    def print(self) -> None:
        """Print the validation table: bicubic, then the model at each validation (the best marked)."""
        if not self.history:
            return
        print("\nvalidation (held-out slices)      PSNR    SSIM  mean FRC")
        print(_row("bicubic", self.history[-1].scores["bicubic"]))
        best_step = self.best["step"] if self.best else None
        for v in self.history:
            print(_row(f"EMSR step {v.step}" + (" *best" if v.step == best_step else ""), v.scores))


def run_training(events: Iterator[Event], args: argparse.Namespace, sources: Mapping | None = None) -> int:
    """Run a training job's ``events`` with the CLI's progress bar; problems as one-line errors.

    ``events`` come from :func:`~napari_emsr.training.iter_finetune` or
    :func:`~napari_emsr.training.iter_finetune_pair`. ``sources`` maps ``(role, index)`` of the
    training volumes to the files they came from, so that non-finite data are named by file.
    Returns the exit status.
    """
    from napari_emsr.cli import CLIError
    from napari_emsr.training import checkpoint_path
    from napari_emsr.training.data import NonFiniteDataError
    from napari_emsr.training.trainer import TrainingWriteError

    ckpt, start = checkpoint_path(args.out), time.time()
    table = ValidationTable()
    try:
        drive(events, desc=f"emsr {args.command}", on_event=table.on_event)
    except NonFiniteDataError as exc:
        source = (sources or {}).get((exc.role, exc.index))
        raise CLIError(str(exc) if source is None else f"{source}: {exc.detail}") from None
    except TrainingWriteError as exc:  # the disk is full: its hints say what to do
        raise CLIError(cli_message(exc)) from None
    except KeyboardInterrupt:
        # a last state of this run (or of the one it resumes) is on disk
        if ckpt.exists() and (args.resume or ckpt.stat().st_mtime >= start - 1):
            print(f"emsr {args.command}: interrupted; the last state is in {ckpt}: continue with --resume",
                  file=sys.stderr)
            return 130
        raise
    table.print()
    return 0
