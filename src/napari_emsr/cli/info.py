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
            "Without MODEL_FILE, describes the architecture of --preset (random weights)."
        ),
    )
    p.add_argument("model", nargs="?", metavar="MODEL_FILE", help="a .safetensors model file")
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="architecture preset (default: paper)")
    p.add_argument("--scale", type=int, choices=[1, 2, 3, 4], help="up-sampling factor (default: 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from napari_emsr.describe import describe_model, format_description

    info = describe_model(args.model, preset=args.preset, scale=args.scale)
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0
