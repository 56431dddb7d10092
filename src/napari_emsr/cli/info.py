"""``emsr info``: architecture, size, FLOPs and provenance of a model file or a preset."""

from __future__ import annotations

import argparse
import json

from napari_emsr.config import PRESETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a model file or a preset",
        description=(
            "Describe a model: architecture and hyper-parameters, parameter count, FLOPs per output "
            "pixel (counted with torch.utils.flop_counter), scale, training pixel size and provenance. "
            "Without MODEL_FILE, describes the shipped default model, or with --preset (or when no default "
            "model ships) that preset's architecture (random weights)."
        ),
    )
    p.add_argument("model", nargs="?", metavar="MODEL_FILE", help="a .safetensors model file")
    p.add_argument("--preset", choices=sorted(PRESETS), help="describe this preset's architecture (random weights)")
    p.add_argument("--scale", type=int, choices=[1, 2, 3, 4], help="up-sampling factor (default: 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from napari_emsr.describe import describe_model, format_description

    from napari_emsr.model_io import default_model_path

    model = args.model
    if model is None and args.preset is None and args.scale is None:
        model = default_model_path()  # None when this build ships no default model
    info = describe_model(model, preset=args.preset or "paper", scale=args.scale)
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0
