"""``emsr train``: train a model from HR volumes (synthetic strategies) or aligned LR/HR pairs."""

from __future__ import annotations

import argparse

from napari_emsr.cli._training import add_common, command_line, run_training, training_config
from napari_emsr.config import PRESETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``emsr train`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a model from scratch",
        description=(
            "Train EMSR from random weights. Synthetic strategies make LR inputs from the HR volumes on the "
            "fly; 'real' and 'denoised' need --lr volumes aligned with --hr (same slices, HR exactly --scale "
            "times finer). For an LR/HR pair as acquired (HR a small field inside LR), use 'emsr finetune'."
        ),
    )
    p.add_argument("--hr", required=True, action="append", metavar="HR", help="HR volume (repeat for several)")
    p.add_argument("--lr", action="append", metavar="LR", help="LR volume aligned with each --hr (real/denoised)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="network preset (default: paper)")
    p.add_argument("--scale", type=int, choices=[1, 2, 3, 4], default=3, help="up-sampling factor (default: 3)")
    p.add_argument("--pixel-size", type=float, metavar="NM", help="HR pixel size in nm (default: read from the files)")
    p.add_argument("--base", metavar="MODEL",
                   help="start from this model (a file, or 'default') instead of random weights; "
                   "a base at another scale gives all its weights but the pixel-shuffle convolution")
    p.add_argument("--balance", choices=["pixels", "volumes"], default="pixels",
                   help="draw training volumes in proportion to their pixels, or equally (default: pixels)")
    add_common(p, default_strategy="synthetic-ii", default_steps=20_000)


def run(args: argparse.Namespace) -> int:
    """Run ``emsr train`` with the parsed ``args``; return the exit status."""
    from napari_emsr.cli import CLIError
    from napari_emsr.io import open_volume
    from napari_emsr.model_io import load_model, resolve_model_path
    from napari_emsr.training import iter_finetune

    config = training_config(args).replace(balance=args.balance)
    base = load_model(resolve_model_path(args.base)) if args.base else None
    hr = [open_volume(path) for path in args.hr]
    lr = [open_volume(path) for path in args.lr] if args.lr else None
    if lr is not None and len(lr) != len(hr):
        raise CLIError(f"give one --lr per --hr ({len(args.lr)} --lr for {len(args.hr)} --hr)")
    if config.strategy.startswith("synthetic") and lr is not None:
        raise CLIError(f"strategy {config.strategy} makes its own LR inputs; leave out --lr (or use --strategy real)")
    for v in hr + (lr or []):
        if v.data.ndim != 3:
            raise CLIError(f"{v.path}: training needs a 3D stack (z, y, x), got shape {v.data.shape}")
    hr_px = args.pixel_size or _yx(hr[0].pixel_size_nm)
    provenance = {"data": [str(v.path) for v in hr + (lr or [])], "command": command_line(args)}
    events = iter_finetune(
        [in_memory(v) for v in hr], None if lr is None else [in_memory(v) for v in lr], out=args.out, config=config,
        base=base, preset=args.preset, scale=args.scale, val_slices=args.val_slices, transfer_scale=True,
        input_pixel_size_nm=hr_px * args.scale if hr_px else None, provenance=provenance,
        resume=args.resume, overwrite=args.overwrite,
    )
    sources = {("hr", k): v.path for k, v in enumerate(hr)} | {("lr", k): v.path for k, v in enumerate(lr or [])}
    return run_training(events, args, sources)


def in_memory(volume, limit_gb: float = 8.0):
    """Training draws thousands of random patches: read the volume into memory once (bounded)."""
    from napari_emsr.cli import CLIError

    size = volume.data.nbytes / 1e9
    if size > limit_gb:
        raise CLIError(
            f"{volume.path}: {size:.1f} GB is more than the {limit_gb:g} GB training reads into memory; "
            f"train on a crop or a subset of slices"
        )
    return volume.data.compute()


def _yx(pixel_size) -> float | None:
    """Return the in-plane pixel size (nm) from a per-axis tuple, or None."""
    if not pixel_size:
        return None
    return float(pixel_size[-1])
