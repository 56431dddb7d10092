"""``emsr finetune``: fine-tune on an LR volume and an HR field inside it, as acquired."""

from __future__ import annotations

import argparse
from typing import Any

from napari_emsr.cli._training import add_common, command_line, numbers, run_training, training_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``emsr finetune`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "finetune",
        help="fine-tune on your LR volume and an HR field inside it",
        description=(
            "Fine-tune a model on a real pair: an LR volume over a large field and an HR volume over a small "
            "field inside it. The HR is resized to the nearest integer pixel-size ratio, located inside the LR "
            "(or placed at --offset), and its intensities matched to the LR's; then training runs as in the paper."
        ),
    )
    p.add_argument("--lr", required=True, metavar="LR",
                   help="the LR volume (large field; TIFF, PNG slices, Zarr, MRC, HDF5 or N5)")
    p.add_argument("--hr", required=True, metavar="HR", help="the HR volume (small field inside the LR field)")
    p.add_argument("--base", metavar="MODEL",
                   help="model to start from: a model file or a shipped model's name (emsr info --zoo); 'none' for "
                   "random weights of --preset (default: the shipped default model for the pair's scale)")
    p.add_argument("--preset", default="lite", help="network preset with --base none (default: lite)")
    p.add_argument("--lr-pixel-size", type=float, metavar="NM", help="LR pixel size in nm (default: from the file)")
    p.add_argument("--hr-pixel-size", type=float, metavar="NM", help="HR pixel size in nm (default: from the file)")
    p.add_argument("--scale", type=int, choices=[1, 2, 3, 4], help="ratio when pixel sizes are unknown")
    p.add_argument("--offset", type=numbers(int, "0,120,340", "Z,Y,X in LR pixels", minimum=0), metavar="Z,Y,X",
                   help="HR field origin in LR pixels (skips the search)")
    p.add_argument("--min-score", type=float, default=0.5, help="refuse matches below this correlation (default: 0.5)")
    p.add_argument("--no-contrast-match", action="store_true", help="keep HR intensities as they are")
    p.add_argument("--register", action="store_true",
                   help="register the HR field finely: sub-pixel offset, a rotation of up to 5 degrees, the pixel-size "
                        "ratio refined around the stated one, per-slice drift (the HR is resampled onto the LR grid)")
    p.add_argument("--z-step", type=float, default=1.0, metavar="N",
                   help="with --register: LR slices per HR slice, for HR sections of another thickness (default: 1)")
    add_common(p, default_strategy="real", default_steps=2000)


def make_job(args: argparse.Namespace) -> Any:
    """Return the :class:`~napari_emsr.training.FineTuneJob` of the parsed ``args`` (files opened, not read)."""
    from napari_emsr.cli.train import _yx
    from napari_emsr.io import open_volume
    from napari_emsr.model_io import default_model_path, resolve_model_path
    from napari_emsr.training import FineTuneJob, PairSpec

    lr, hr = open_volume(args.lr), open_volume(args.hr)
    pair = PairSpec(
        lr.data, hr.data, lr_pixel_size=args.lr_pixel_size or _yx(lr.pixel_size_nm),
        hr_pixel_size=args.hr_pixel_size or _yx(hr.pixel_size_nm), scale=args.scale, offset=args.offset,
        min_score=args.min_score, match_contrast=not args.no_contrast_match, lr_name=str(lr.path), hr_name=str(hr.path),
        register=args.register, z_step=args.z_step,
    )  # fmt: skip
    if args.base is not None and args.base.lower() == "none":
        base = None
    elif args.base is not None:
        base = resolve_model_path(args.base)
    else:  # the best shipped model for the pair's scale (none for a scale the zoo has no model of)
        base = default_model_path(pair.known_scale) if pair.known_scale else None
    return FineTuneJob(
        pair, out=args.out, config=training_config(args), base=base,
        preset=args.preset, val_slices=args.val_slices, resume=args.resume, overwrite=args.overwrite,
        check_noise=False, previews=False,
        provenance={"data": {"lr": str(lr.path), "hr": str(hr.path)}, "command": command_line(args)},
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run ``emsr finetune`` with the parsed ``args``; return the exit status."""
    from napari_emsr.training import finetune_pair

    return run_training(finetune_pair.iter_finetune_pair(make_job(args)), args)
