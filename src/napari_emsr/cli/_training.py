"""Options and progress display shared by ``emsr train`` and ``emsr finetune``."""

from __future__ import annotations

import argparse
import math
import shlex
import time
from typing import Iterator

from napari_emsr.config import STRATEGIES, TrainingConfig


def three_numbers(cast: type, example: str, meaning: str, *, minimum: float | None = None):
    """Return an argparse type for three comma-separated numbers, e.g. ``1,1,1`` (each >= ``minimum``)."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(cast(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != 3:
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


def add_common(p: argparse.ArgumentParser, *, default_strategy: str, default_steps: int) -> None:
    p.add_argument("--out", required=True, metavar="MODEL",
                   help="model file to write (.safetensors); the best by validation SSIM")
    p.add_argument("--strategy", choices=STRATEGIES, default=default_strategy,
                   help=f"training strategy (default: {default_strategy})")
    p.add_argument("--steps", type=int, default=default_steps, help=f"optimisation steps (default: {default_steps})")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of wall time, whichever comes first")
    p.add_argument("--loss", choices=["l1", "l2"], default="l1", help="pixel loss (default: l1)")
    p.add_argument("--lambdas", type=lambdas, default=(1.0, 1.0, 1.0), metavar="L1,L2,L3",
                   help="weights of l(f(y),x), l(f(y'),x), l(f(y),f(y')) (default: 1,1,1)")
    p.add_argument("--no-noisier", action="store_true", help="train without the noisier copy y' (plain supervised)")
    p.add_argument("--batch", type=int, default=2, help="patches per step (default: 2, as the paper)")
    p.add_argument("--patch", type=int, default=48, help="LR patch size in pixels (default: 48)")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="initial Adam learning rate (default: 1e-4)")
    p.add_argument("--halve-every", type=int, default=50_000,
                   help="halve the learning rate every N steps (default: 50000)")
    p.add_argument("--val-slices", metavar="SPEC",
                   help="held-out slices of the first volume: last:10, first:5, 40:50 or 3,7,9 (default: last 10%%)")
    p.add_argument("--val-every", type=int, default=250, help="validate every N steps (default: 250)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16 autocast for the network's passes (loss and weights stay fp32); faster on CPUs with "
                        "AMX-BF16 and recent GPUs (default: fp32)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its .last.safetensors checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def training_config(args: argparse.Namespace) -> TrainingConfig:
    return TrainingConfig(
        strategy=args.strategy, steps=args.steps, minutes=args.minutes, batch=args.batch, patch=args.patch,
        learning_rate=args.learning_rate, halve_every=args.halve_every, loss=args.loss, weights=args.lambdas,
        noisier_branch=not args.no_noisier, val_every=args.val_every, seed=args.seed, device=args.device,
        precision=args.precision,
    )


def command_line(args: argparse.Namespace) -> str:
    """Return the command as typed, for the model's provenance."""
    return "emsr " + " ".join(shlex.quote(a) for a in args.argv)


def _row(name: str, scores: dict) -> str:
    return f"  {name:<22}{scores['psnr']:>8.2f}{scores['ssim']:>8.4f}{scores['frc_mean']:>10.4f}"


def run_training(events: Iterator, args: argparse.Namespace, sources: dict | None = None) -> int:
    """Run ``events`` (from ``iter_finetune``) with :func:`show_progress`, problems as one-line errors.

    ``sources`` maps ``(role, index)`` of the training volumes to the files they came from, so that
    non-finite data are named by file. Returns the exit status.
    """
    import sys

    from napari_emsr.cli import CLIError
    from napari_emsr.model_io import ModelWriteError
    from napari_emsr.training import checkpoint_path
    from napari_emsr.training.data import NonFiniteDataError

    ckpt, start = checkpoint_path(args.out), time.time()

    def resumable() -> bool:  # a last state of this run (or of the one it resumes) is on disk
        return ckpt.exists() and (args.resume or ckpt.stat().st_mtime >= start - 1)

    try:
        show_progress(events)
    except NonFiniteDataError as exc:
        source = (sources or {}).get((exc.role, exc.index))
        raise CLIError(str(exc) if source is None else f"{source}: {exc.detail}") from None
    except FloatingPointError as exc:  # diverged (the data were checked to be finite before training)
        raise CLIError(f"{exc} (--learning-rate), and start again") from None
    except ModelWriteError as exc:
        then = f"; then continue with --resume (the last state saved is in {ckpt})" if resumable() else ""
        raise CLIError(f"{exc}. Free some space{then}") from None
    except KeyboardInterrupt:
        if resumable():
            print(f"emsr {args.command}: interrupted; the last state is in {ckpt}: continue with --resume",
                  file=sys.stderr)
            return 130
        raise
    return 0


def show_progress(events: Iterator, *, quiet: bool = False) -> dict | None:
    """Drive the training generator with a tqdm bar; print the validation table at the end.

    The generator is closed on the way out, also on Ctrl-C here, so that it saves its last state
    before the command ends.
    """
    from tqdm import tqdm

    bar, best, history = None, None, []
    try:
        for event in events:
            if bar is None:
                bar = tqdm(total=event.total_steps, initial=event.step, unit="step", disable=quiet, dynamic_ncols=True)
            if event.kind == "step":
                bar.update(event.step - bar.n)
                postfix = {k: f"{v:.4f}" for k, v in event.losses.items()} | {"lr": f"{event.learning_rate:.1e}"}
                if event.eta_s is not None:  # honours --minutes, unlike the bar's own step-based estimate
                    postfix["left"] = tqdm.format_interval(event.eta_s)
                bar.set_postfix(postfix)
            elif event.kind == "validation":
                v = event.validation
                history.append((event.step, v))
                bar.write(f"step {event.step}: SSIM {v['ssim']:.4f} PSNR {v['psnr']:.2f} FRC {v['frc_mean']:.4f} "
                          f"(bicubic SSIM {v['bicubic']['ssim']:.4f}) {event.message}".rstrip())
            elif event.message:
                bar.write(event.message)
            best = event.best or best
    finally:
        try:
            if hasattr(events, "close"):
                events.close()  # stopped here (Ctrl-C): the generator saves its last state now
        finally:
            if bar is not None:
                bar.close()
    if history:
        print("\nvalidation (held-out slices)      PSNR    SSIM  mean FRC")
        print(_row("bicubic", history[-1][1]["bicubic"]))
        for step, v in history:
            print(_row(f"EMSR step {step}" + (" *best" if best and best["step"] == step else ""), v))
    return best
