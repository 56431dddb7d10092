"""Package a trained model as napari-emsr's default model (src/napari_emsr/weights/).

    python scripts/ship_default_model.py RUN.safetensors [--evaluation results.json]

Copies the weights unchanged and completes the metadata a shipped model must carry: its name and
description, the training data's credit and licence (FlyEM, CC BY 3.0, modified), the data as named
datasets rather than local paths, and (optionally) the held-out evaluation of the model card. The
training provenance written by ``emsr train`` (command, strategy, steps, wall time, hardware,
validation) is kept as it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_emsr import load_model, save_model
from napari_emsr.model_io import DEFAULT_MODEL_NAME
from ship_zoo_model import reproducible_command as _reproducible  # scripts/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
CREDIT = (
    "FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples (commit ce839e17), "
    "CC BY 3.0; modified: degraded (synthetic-ii) and cropped into training patches"
)


def reproducible_command(command: str, total_steps: int | None) -> str:
    """The recorded command as one run from scratch (see ``ship_zoo_model.reproducible_command``)."""
    return _reproducible(command, total_steps, "default.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the best model written by emsr train --out")
    parser.add_argument("--evaluation", help="JSON from benchmarks/evaluate_model.py, stored as held-out metrics")
    parser.add_argument("--total-steps", type=int, help="steps the whole run made (the best model may be earlier)")
    parser.add_argument("--note", help="how the run went (e.g. interrupted and resumed), stored as provenance")
    args = parser.parse_args()
    model = load_model(args.run)
    meta = model.metadata
    if not meta.trained:
        raise SystemExit(f"{args.run} has random weights: it cannot be shipped as the default model")
    provenance = dict(meta.provenance)
    provenance["data"] = [
        Path(p).name for p in provenance.get("data", [])  # dataset names, not this machine's paths
    ]
    provenance["licence"] = CREDIT
    provenance["command_as_run"] = provenance.get("command", "")
    provenance["command"] = reproducible_command(provenance.get("command", ""), args.total_steps)
    if args.total_steps:
        provenance["run_steps"] = args.total_steps
    if args.note:
        provenance["run_note"] = args.note
    if args.evaluation:
        results = json.loads(Path(args.evaluation).read_text())
        provenance["held_out_evaluation"] = {
            "data": "FlyEM validation_sample (never used in training)",
            "degradation": results["degradation"],
            "slices": results["slices"],
            "bicubic": {k: round(results["bicubic"][k], 4) for k in ("psnr", "ssim", "frc_mean")},
            "model": {k: round(v, 4) for k, v in next(iter(results["models"].values())).items() if k in ("psnr", "ssim", "frc_mean")},
        }
    out = ROOT / "src" / "napari_emsr" / "weights" / DEFAULT_MODEL_NAME
    out.parent.mkdir(exist_ok=True)
    save_model(
        model,
        out,
        overwrite=True,
        name=f"EMSR default x{model.config.scale} ({model.config.preset_name or 'custom'})",
        description=(
            "Pretrained x3 EMSR for FIB-SEM/SBEM-like EM at 30 nm input pixels -> 10 nm; trained without clean "
            "references (synthetic-ii) on FlyEM Drosophila medulla FIB-SEM. See docs/models/default.md."
        ),
        provenance=provenance,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
