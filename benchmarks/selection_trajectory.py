"""Which validation should a fine-tune keep? Every checkpoint of one run, scored on validation and evaluation slices.

A fine-tune validates every 250 steps on a held-out slice of the pair (inside the HR field) and keeps
one model. This runs the ``real`` fine-tune of ``finetune_modalities.py`` (same pairs, same em-like
acquisition, from ``em-x3``) for ``--steps`` steps and, at every validation, also scores the
checkpoint of that step on the evaluation slices (never seen in training or selection). From the
trajectory it reports which step each rule of ``TrainingConfig.keep_by`` keeps and what that model
scores on the evaluation slices, beside the best step in hindsight.

    python benchmarks/selection_trajectory.py --steps 3000 --modalities celegans-em,hela-sbfsem,mussel-ssem

Writes ``benchmarks/results/selection_trajectory.json`` (after each modality; ``--resume`` keeps those done).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import finetune_modalities as fm
import torch

from napari_emsr import load_model
from napari_emsr.config import KEEP_BY, TrainingConfig
from napari_emsr.device import cpu_name, resolve_precision
from napari_emsr.model_io import resolve_model_path
from napari_emsr.training import checkpoint_path, iter_finetune, prepare_pair
from napari_emsr.training.trainer import keep_score

METRICS = ("ssim", "psnr", "frc_mean")


def pair(name: str):
    """The pair (LR, HR field) and the evaluation slices of ``finetune_modalities`` for data set ``name``."""
    folder, pair_slices, eval_slices, crop_field = fm.MODALITIES[name]
    hr = fm.load(folder, pair_slices)
    lr = fm.acquire(hr, seed=1)
    field, _, _ = fm.hr_field(hr, crop_field)
    lr_part, hr_part, _ = prepare_pair(lr, field, scale=fm.SCALE, min_score=0.3)
    hr_eval = fm.load(folder, eval_slices)
    return lr_part, hr_part, fm.acquire(hr_eval, seed=7), hr_eval


def trajectory(name: str, steps: int, precision: str) -> list[dict]:
    lr_part, hr_part, lr_eval, hr_eval = pair(name)
    config = TrainingConfig(strategy="real", steps=steps, patch=48, val_every=250, seed=0, precision=precision)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.safetensors"
        for event in iter_finetune([hr_part], [lr_part], out=out, config=config, base=resolve_model_path("em-x3"),
                                   preset="lite", scale=fm.SCALE, val_slices="last:1"):  # fmt: skip
            if event.kind == "validation":  # the last state was just saved: this step's weights
                scores = event.payload.scores
                evaluated = fm.evaluate(load_model(checkpoint_path(out)), lr_eval, hr_eval)
                rows.append({"step": event.payload.step, "val": {k: scores[k] for k in METRICS},
                             "eval": {k: evaluated[k] for k in METRICS}})  # fmt: skip
                print(name, rows[-1], flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    """The step each keep_by rule keeps and its evaluation scores; the best evaluation steps in hindsight."""
    kept = {}
    for rule in KEEP_BY:
        best = rows[0]
        for row in rows[1:]:  # as the trainer does: a later validation replaces only when strictly better
            if keep_score(row["val"], rule) > keep_score(best["val"], rule):
                best = row
        kept[rule] = {"step": best["step"], **best["eval"]}
    hindsight = {k: max(r["eval"][k] for r in rows) for k in METRICS}
    return {"kept": kept, "best_in_hindsight": hindsight, "last": {"step": rows[-1]["step"], **rows[-1]["eval"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--modalities", default="celegans-em,hela-sbfsem,mussel-ssem")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--json", default="benchmarks/results/selection_trajectory.json")
    parser.add_argument("--resume", action="store_true", help="keep the modalities already in --json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precision, _ = resolve_precision(args.precision, torch.device("cpu"))
    results: dict = {"steps": args.steps, "base": "em-x3", "strategy": "real", "machine": cpu_name(),
                     "threads": args.threads, "precision": precision, "modalities": {}}  # fmt: skip
    if args.resume and Path(args.json).exists():
        results = json.loads(Path(args.json).read_text())
    for name in args.modalities.split(","):
        if name in results["modalities"]:
            continue
        started = time.perf_counter()
        rows = trajectory(name, args.steps, precision)
        results["modalities"][name] = {"wall_s": time.perf_counter() - started, "trajectory": rows, **summarise(rows)}
        Path(args.json).write_text(json.dumps(results, indent=1))
    for name, entry in results["modalities"].items():
        for rule, k in entry["kept"].items():
            print(f"{name:<14} keep_by {rule:<9} step {k['step']:>5}: SSIM {k['ssim']:.4f}  PSNR {k['psnr']:.2f}  "
                  f"mean FRC {k['frc_mean']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
