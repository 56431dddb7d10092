"""Fine-tuning on a fixed CPU budget beats bicubic on held-out data; ablation of loss and noisier branch.

The pair, as a user would have it (paper Fig. 1), made from FlyEM training_sample1:
- HR: the original 10 nm FIB-SEM slices (noisy; never cleaned);
- LR: an EM-like acquisition at 30 nm with its own, independent noise (``_data.acquire_lr``: beam
  blur, area integration, Poisson shot noise, line noise, read noise).
The pair goes through ``prepare_pair`` (pixel sizes 30 and 10 nm; the HR field is located in the LR).

Each variant fine-tunes for the same budget with the ``real`` strategy: ``--minutes`` of this
machine's wall time when nothing else runs, enforced as that many minutes times the torch threads
of process CPU time (so other load on the machine does not shorten a run). Then it is evaluated
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--variants", default="l1,l2,l1-plain,l2-plain")
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--eval-slices", type=int, default=20, help="held-out validation slices to score")
    parser.add_argument("--json", default="benchmarks/results/finetune_budget.json")
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
    for name in args.variants.split(","):
        torch.manual_seed(0)
        base = build_emsr(args.preset)
        config = TrainingConfig(strategy="real", steps=10**7, val_every=250, seed=0, **VARIANTS[name])
        start, cpu_start = time.perf_counter(), time.process_time()
        budget = args.minutes * 60 * torch.get_num_threads()  # CPU seconds: robust to other load
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m.safetensors"
            last = None
            events = iter_finetune([hr_part], [lr_part], out=out, config=config, base=base)
            for event in events:
                last = event
                if time.process_time() - cpu_start > budget:
                    events.close()  # like Cancel: keeps the best model so far
                    break
            model = load_model(out)
            best = json.loads(json.dumps(model.metadata.provenance["best_validation"]))
        sr = super_resolve_stack(model, lr_val)
        entry = {**scores(reference, sr), "steps": last.step, "wall_s": time.perf_counter() - start,
                 "cpu_s": time.process_time() - cpu_start, "best_step": best["step"]}
        results["variants"][name] = entry
        print(f"{name}: {entry}", flush=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
