"""Fine-tuning on a fixed CPU budget beats bicubic on held-out data; ablation of loss and noisier branch.

The pair, as a user would have it (paper Fig. 1), made from FlyEM training_sample1:
- HR: the original 10 nm FIB-SEM slices (noisy; never cleaned);
- LR: an EM-like acquisition at 30 nm with its own, independent noise (``_data.acquire_lr``: beam
  blur, area integration, Poisson shot noise, line noise, read noise).
The pair goes through ``prepare_pair`` (pixel sizes 30 and 10 nm; the HR field is located in the LR).

Each variant fine-tunes for the same budget with the ``real`` strategy: ``--minutes`` of this
machine's time, turned into a number of steps per variant from its measured step time (so that other
load during the long runs cannot bias the comparison; a run without the noisier branch does half the
work per step and so gets about twice the steps). Then it is evaluated
on held-out validation_sample slices (never seen in training), acquired the same way with another
seed, against the original slices; bicubic up-sampling of the same LR is the baseline.

    python benchmarks/finetune_budget.py --minutes 15 --variants l1,l2,l1-plain,l2-plain

Variants: ``l1``/``l2`` = the paper's loss with the noisier branch; ``-plain`` = without it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_emsr import build_emsr, load_model
from napari_emsr.config import TrainingConfig
from napari_emsr.metrics import frc_mean, psnr, ssim
from napari_emsr.resample import bicubic_upsample
from napari_emsr.training import iter_finetune, prepare_pair

from _data import acquire_lr, load_stack

VARIANTS = {
    "l1": dict(loss="l1", noisier_branch=True),
    "l2": dict(loss="l2", noisier_branch=True),
    "l1-plain": dict(loss="l1", noisier_branch=False),
    "l2-plain": dict(loss="l2", noisier_branch=False),
}


@torch.inference_mode()
def super_resolve_stack(model, lr: np.ndarray) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(s / 255.0).float()[None, None]).clamp(0, 1)[0, 0].numpy() for s in lr]
    return np.stack(out)


def scores(reference: np.ndarray, images: np.ndarray) -> dict[str, float]:
    per = [(psnr(r, p, data_range=1.0), ssim(r, p, data_range=1.0), frc_mean(r, p)) for r, p in zip(reference, images)]
    values = np.array(per)
    return {
        "psnr": float(values[:, 0].mean()),
        "ssim": float(values[:, 1].mean()),
        "frc_mean": float(values[:, 2].mean()),
        "ssim_per_slice_std": float(values[:, 1].std()),
    }


def calibrate(names: list[str], hr_part, lr_part, args) -> dict[str, dict]:
    """Median step time of each variant (after warm-up), and the steps that fill the budget.

    Fixing the number of steps (rather than stopping on a clock) keeps the comparison fair when
    other work shares the machine during the long runs; the calibration itself is short.
    """
    out, by_cost = {}, {}
    for name in names:
        branch = VARIANTS[name]["noisier_branch"]  # the loss norm does not change the work per step
        if branch in by_cost:
            out[name] = by_cost[branch]
            continue
        config = TrainingConfig(strategy="real", steps=args.calibration_steps, val_every=10**6, seed=0, **VARIANTS[name])
        stamps = []
        with tempfile.TemporaryDirectory() as tmp:
            for event in iter_finetune([hr_part], [lr_part], out=Path(tmp) / "c.safetensors", config=config,
                                       base=build_emsr(args.preset)):
                if event.kind == "step":
                    stamps.append(time.perf_counter())
        step_s = float(np.median(np.diff(stamps)[3:]))
        out[name] = by_cost[branch] = {"median_step_s": step_s, "steps": max(1, int(args.minutes * 60 / step_s))}
        print(f"calibration {name}: {step_s * 1000:.0f} ms/step -> {out[name]['steps']} steps in {args.minutes:g} min", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--variants", default="l1,l2,l1-plain,l2-plain")
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--eval-slices", type=int, default=20, help="held-out validation slices to score")
    parser.add_argument("--calibration-steps", type=int, default=60, help="steps timed per kind of variant")
    parser.add_argument("--json", default="benchmarks/results/finetune_budget.json")
    parser.add_argument("--resume", action="store_true",
                        help="keep the variants and the calibration already in --json (same budget and preset)")
    args = parser.parse_args()

    hr_train = load_stack("training_sample1")
    lr_train, hr_train = acquire_lr(hr_train, 3, seed=1)
    lr_part, hr_part, report = prepare_pair(lr_train, hr_train, lr_pixel_nm=30, hr_pixel_nm=10)
    print(report.summary())

    picks = np.linspace(0, 199, args.eval_slices).round().astype(int).tolist()
    lr_val, hr_val = acquire_lr(load_stack("validation_sample", picks), 3, seed=7)
    reference = hr_val / 255.0
    bicubic = np.clip(bicubic_upsample(lr_val / 255.0, 3), 0, 1)
    results = {"bicubic": scores(reference, bicubic), "budget_minutes": args.minutes, "preset": args.preset,
               "pair": {"offset": report.offset, "score": report.score}, "eval_slices": picks, "variants": {}}
    print(f"bicubic: {results['bicubic']}")
    names = args.variants.split(",")
    previous = json.loads(Path(args.json).read_text()) if args.resume and Path(args.json).exists() else {}
    if previous and (previous.get("budget_minutes"), previous.get("preset")) != (args.minutes, args.preset):
        raise SystemExit(f"{args.json} holds a run with another budget or preset; drop --resume or use another --json")
    steps = dict(previous.get("calibration", {}))
    missing = [name for name in names if name not in steps]
    steps.update(calibrate(missing, hr_part, lr_part, args) if missing else {})
    results["calibration"] = steps
    results["variants"] = dict(previous.get("variants", {}))
    for name in names:
        if name in results["variants"]:
            print(f"{name}: kept from {args.json}")
            continue
        torch.manual_seed(0)
        base = build_emsr(args.preset)
        config = TrainingConfig(strategy="real", steps=steps[name]["steps"], val_every=250, seed=0, **VARIANTS[name])
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m.safetensors"
            for _ in iter_finetune([hr_part], [lr_part], out=out, config=config, base=base):
                pass
            model = load_model(out)
        best = model.metadata.provenance["best_validation"]
        sr = super_resolve_stack(model, lr_val)
        entry = {**scores(reference, sr), "steps": config.steps, "wall_s": time.perf_counter() - start,
                 "best_step": best["step"], "held_out_training_slices": {k: best[k] for k in ("psnr", "ssim", "frc_mean")}}
        results["variants"][name] = entry
        print(f"{name}: {entry}", flush=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
