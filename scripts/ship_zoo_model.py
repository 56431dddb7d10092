"""Add a trained model to the model zoo shipped in the package (src/napari_emsr/weights/).

    python scripts/ship_zoo_model.py RUN.safetensors --name em-x3 [--default] \
        --evaluation benchmarks/results/zoo_eval.json --label zoo-x3 [--total-steps N] [--note TEXT]

Copies the weights unchanged and completes the metadata a shipped model carries: its zoo name and
description, the training data's credits and licences (as named data sets, not local paths), the
measured range of valid input pixel sizes and the held-out tables of ``benchmarks/evaluate_zoo.py``
(``--label`` is the model's label in that JSON). Updates ``weights/zoo.json`` (``--default`` makes it
the model used for its scale when none is given). The training provenance written by ``emsr train``
(command, strategy, steps, wall time, hardware, validation) is kept as it is, plus a reproducible
form of the command.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

from napari_emsr import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "napari_emsr" / "weights"

#: data-set folder -> credit line (from each folder's README in ../shared/data)
CREDITS = {
    "flyem-medulla-fibsem": "FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples (commit ce839e17), "
    "CC BY 3.0; modified: cropped into patches and degraded",
    "hela-sbfsem-empiar10094": "HeLa SBF-SEM images from EMPIAR-10094 (EMBL-EBI), via github.com/reyesaldasoro/MitoEM "
    "(commit cd406ec), CC0 1.0; cropped and degraded",
    "celegans-em-neubias": "Derived from NEUBIAS training-resources (https://github.com/NEUBIAS/training-resources, "
    "commit 8bbaa51), Copyright (c) NEUBIAS, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/); C. elegans EM "
    "volume originally from EMPIAR-10982. Changed: converted from TIFF to PNG, split into training/validation, cropped "
    "into patches and degraded",
    "mussel-ssem-vemstitch": "Mussel volume-EM tiles from vEMstitch (github.com/HeracleBT/vEMstitch, commit cff396e), "
    "CC0 1.0; cropped to 512x512, cropped into patches and degraded",
}


def data_sets(paths: list[str]) -> list[str]:
    """``DATA/<set>/<folder>`` names for the recorded training paths."""
    out = []
    for p in paths:
        m = re.search(r"([a-z0-9-]+)/(training[^/]*)/?$", p)
        out.append(f"{m.group(1)}/{m.group(2)}" if m else Path(p).name)
    return out


def reproducible_command(command: str, total_steps: int | None, out_name: str) -> str:
    """The recorded command as one run from scratch: data under DATA/, no --resume / --minutes."""
    words = shlex.split(command)
    out, skip = [], False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word == "--resume":
            continue
        if word == "--minutes":
            skip = True
            continue
        prev = words[i - 1] if i else ""
        if prev in ("--hr", "--lr"):
            word = "DATA/" + data_sets([word])[0]
        elif prev == "--out":
            word = out_name
        elif prev == "--base" and word.endswith(".safetensors"):
            word = "PREVIOUS_STAGE.last.safetensors"  # the previous stage's last state (see "stages")
        elif prev == "--steps" and total_steps:
            word = str(total_steps)
        out.append(word)
    return " ".join(w if w.startswith("DATA/") else shlex.quote(w) for w in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the best model written by emsr train --out")
    parser.add_argument("--name", required=True, help="zoo name, e.g. em-x3")
    parser.add_argument("--default", action="store_true", help="the model used for its scale when none is given")
    parser.add_argument("--evaluation", help="JSON of benchmarks/evaluate_zoo.py (with --sweep for the valid range)")
    parser.add_argument("--label", help="the model's label in that JSON")
    parser.add_argument("--total-steps", type=int, help="steps the whole run made (the best model may be earlier)")
    parser.add_argument("--note", help="how the run went (e.g. interrupted and resumed)")
    parser.add_argument("--stage", action="append", default=[], help="one training stage, described (repeat, in order)")
    parser.add_argument("--card", help="model card path to record in zoo.json (default docs/models/NAME.md)")
    args = parser.parse_args()
    model = load_model(args.run)
    meta = model.metadata
    if not meta.trained:
        raise SystemExit(f"{args.run} has random weights: it cannot be shipped")
    s = model.config.scale
    provenance = dict(meta.provenance)
    used = data_sets(provenance.get("data", []))
    provenance["data"] = used
    provenance["licence"] = [CREDITS[k] for k in CREDITS if any(u.startswith(k + "/") for u in used)]
    provenance["command_as_run"] = provenance.get("command", "")
    provenance["command"] = reproducible_command(provenance.get("command", ""), args.total_steps, f"{args.name}.safetensors")
    if args.total_steps:
        provenance["run_steps"] = args.total_steps
    if args.note:
        provenance["run_note"] = args.note
    if args.stage:
        provenance["stages"] = args.stage
    valid = None
    if args.evaluation:
        results = json.loads(Path(args.evaluation).read_text())
        label = args.label or Path(args.run).stem
        held_out = {}
        for kind, table in results["acquisitions"].items():
            for data, by_scale in table.items():
                row = by_scale.get(f"x{s}", {})
                if label in row:
                    held_out.setdefault(kind, {})[data] = {
                        m: {k: round(v, 4) for k, v in row[m].items() if k in ("psnr", "ssim", "frc_mean") and v is not None}
                        for m in ("bicubic", label)
                    }
        provenance["held_out_evaluation"] = {"script": "benchmarks/evaluate_zoo.py", "tables": held_out}
        sweep = results.get("pixel_size_sweep", {}).get(label)
        if sweep and sweep["valid_input_pixel_size_nm"]:
            valid = tuple(round(v, 1) for v in sweep["valid_input_pixel_size_nm"])
    modalities = ", ".join(sorted({u.split("/")[0] for u in used}))
    out = WEIGHTS / f"emsr-{args.name}.safetensors"
    save_model(
        model, out, overwrite=True,
        name=f"EMSR {args.name} (x{s}, {model.config.preset_name or 'custom'})",
        description=(
            f"Pretrained x{s} EMSR for volume EM (FIB-SEM, SBF-SEM, serial-section EM) at about {meta.input_pixel_size_nm:g} nm "
            f"input pixels; trained without clean references (synthetic-em: a physical model of the LR scan, with scale "
            f"augmentation) on {modalities}. See docs/models/{args.name}.md."
        ),
        provenance=provenance, valid_input_pixel_size_nm=valid,
    )  # fmt: skip
    index_path = WEIGHTS / "zoo.json"
    index = json.loads(index_path.read_text())
    entry = {"name": args.name, "file": out.name, "card": args.card or f"docs/models/{args.name}.md"}
    index["models"] = [m for m in index["models"] if m["name"] != args.name] + [entry]
    if args.default:
        index["defaults"][str(s)] = args.name
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); valid input pixel sizes {valid}; zoo.json updated")


if __name__ == "__main__":
    main()
