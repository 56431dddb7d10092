"""``emsr info``: architecture, size, FLOPs and provenance of a model file or a preset."""

from __future__ import annotations

import argparse
import json

from napari_emsr.config import PRESETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``emsr info`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "info",
        help="describe a model file or a preset",
        description=(
            "Describe a model: architecture and hyper-parameters, parameter count, FLOPs per output "
            "pixel (counted with torch.utils.flop_counter), scale, training pixel size and provenance. "
            "Without MODEL_FILE, describes the shipped default model, or with --preset (or when no default "
            "model ships) that preset's architecture (random weights). --zoo lists the shipped models, whose "
            "names can stand for a model file (emsr predict --model NAME, emsr info NAME)."
        ),
    )
    p.add_argument(
        "model", nargs="?", metavar="MODEL_FILE", help="a .safetensors model file, or a zoo name (see --zoo)"
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="describe this preset's architecture (random weights)")
    p.add_argument("--scale", type=int, choices=[1, 2, 3, 4], help="up-sampling factor (default: 3)")
    p.add_argument(
        "--zoo", action="store_true",
        help="list the shipped models (the zoo): name, scale, preset, pixel sizes, default per scale, card",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    """Run ``emsr info`` with the parsed ``args``; return the exit status."""
    from napari_emsr.describe import describe_model, format_description
    from napari_emsr.model_io import default_model_path, resolve_model_path

    if args.zoo:
        if args.model is not None or args.preset is not None or args.scale is not None:
            raise ValueError("--zoo lists the shipped models; give it without MODEL_FILE, --preset or --scale")
        return _list_zoo(args.json)
    model = args.model
    if model is not None:
        model = resolve_model_path(model)  # a zoo name stands for its file
    if model is None and args.preset is None and args.scale is None:
        model = default_model_path()  # None when this build ships no default model
    info = describe_model(model, preset=args.preset or "paper", scale=args.scale)
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0


def _nm(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g} nm"


def zoo_rows(models: list | None = None) -> list[dict[str, str]]:
    """One row of text per zoo model (``emsr info --zoo``): what each column shows."""
    from napari_emsr.zoo import zoo_models

    rows = []
    for m in zoo_models() if models is None else models:
        valid = m.valid_input_pixel_size_nm
        rows.append({
            "name": m.name, "scale": f"x{m.scale}", "preset": m.preset or "custom",
            "input pixel": _nm(m.input_pixel_size_nm),
            "valid input pixel": f"{valid[0]:g}-{valid[1]:g} nm" if valid else "not measured",
            "default for scale": "yes" if m.is_default else "no", "card": m.card or "-",
        })  # fmt: skip
    return rows


def _list_zoo(as_json: bool) -> int:
    from napari_emsr.zoo import zoo_models

    models = zoo_models()
    if as_json:
        print(json.dumps([m.summary() for m in models], indent=2))
        return 0
    if not models:
        print("the model zoo is empty: this napari-emsr build ships no pretrained model")
        return 0
    rows = zoo_rows(models)
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    print("\nA name stands for its model file: emsr predict IN OUT --model NAME; 'default' is the x3 default.")
    return 0
