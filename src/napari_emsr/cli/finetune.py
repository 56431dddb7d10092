"""``emsr finetune``: fine-tune on an LR volume and an HR field inside it, as acquired."""

from __future__ import annotations

import argparse

from napari_emsr.cli._training import add_common, command_line, run_training, three_numbers, training_config


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
    p.add_argument("--lr", required=True, metavar="LR", help="the LR volume (large field)")
    p.add_argument("--hr", required=True, metavar="HR", help="the HR volume (small field inside the LR field)")
    p.add_argument("--base", metavar="MODEL",
                   help="model to start from: a model file, or 'default' for the shipped default model "
                   "(without --base: random weights of --preset)")
    p.add_argument("--preset", default="lite", help="network preset without --base (default: lite)")
    p.add_argument("--lr-pixel-size", type=float, metavar="NM", help="LR pixel size in nm (default: from the file)")
    p.add_argument("--hr-pixel-size", type=float, metavar="NM", help="HR pixel size in nm (default: from the file)")
    p.add_argument("--scale", type=int, choices=[1, 2, 3, 4], help="ratio when pixel sizes are unknown")
    p.add_argument("--offset", type=three_numbers(int, "0,120,340", "Z,Y,X in LR pixels", minimum=0), metavar="Z,Y,X",
                   help="HR field origin in LR pixels (skips the search)")
    p.add_argument("--min-score", type=float, default=0.5, help="refuse matches below this correlation (default: 0.5)")
    p.add_argument("--no-contrast-match", action="store_true", help="keep HR intensities as they are")
    add_common(p, default_strategy="real", default_steps=2000)


def run(args: argparse.Namespace) -> int:
    """Run ``emsr finetune`` with the parsed ``args``; return the exit status."""
    from napari_emsr.cli import CLIError
    from napari_emsr.cli.train import _yx
    from napari_emsr.io import open_volume
    from napari_emsr.model_io import load_model, resolve_model_path
    from napari_emsr.training import iter_finetune, prepare_pair
    from napari_emsr.training.data import NonFiniteDataError, check_finite

    config = training_config(args)
    lr, hr = open_volume(args.lr), open_volume(args.hr)
    for v in (lr, hr):
        if v.data.ndim != 3:
            raise CLIError(f"{v.path}: fine-tuning needs a 3D stack (z, y, x), got shape {v.data.shape}")
        try:  # before the pair is located and matched, which NaN or inf values would spoil
            check_finite(v.data, str(v.path))
        except NonFiniteDataError as exc:
            raise CLIError(str(exc)) from None
    base = load_model(resolve_model_path(args.base)) if args.base else None
    scale = args.scale or (base.config.scale if base is not None and not args.lr_pixel_size else None)
    lr_px = args.lr_pixel_size or _yx(lr.pixel_size_nm)
    hr_px = args.hr_pixel_size or _yx(hr.pixel_size_nm)
    if not (lr_px and hr_px) and scale is None:
        raise CLIError("the pixel sizes are not in the files: give --lr-pixel-size and --hr-pixel-size (or --scale)")
    lr_part, hr_part, report = prepare_pair(
        lr.data, hr.data, lr_pixel_nm=lr_px if hr_px else None, hr_pixel_nm=hr_px if lr_px else None,
        scale=scale, offset=args.offset, min_score=args.min_score, match_contrast=not args.no_contrast_match,
    )
    print(report.summary())
    if base is None:
        print(f"no --base model: training the '{args.preset}' preset from random weights")
    provenance = {
        "data": {"lr": str(lr.path), "hr": str(hr.path)},
        "pair": {"offset_zyx": list(report.offset), "match_score": round(report.score, 4), "scale": report.scale,
                 "gain": round(report.gain, 4), "intensity_offset": round(report.intensity_offset, 3)},
        "command": command_line(args),
    }
    events = iter_finetune(
        [hr_part], [lr_part], out=args.out, config=config, base=base, preset=args.preset, scale=report.scale,
        val_slices=args.val_slices, input_pixel_size_nm=lr_px, provenance=provenance,
        resume=args.resume, overwrite=args.overwrite,
    )
    return run_training(events, args)  # the files were checked above; the prepared pair's slices differ
