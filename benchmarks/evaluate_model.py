"""Held-out quality of a model against bicubic on FlyEM validation_sample slices.

The slices (10 nm, never used for training) are the reference; LR inputs at 30 nm are made by a
degradation: ``em-like`` (default; beam blur, area integration, Poisson shot noise, line noise,
read noise: not the synthetic-ii model the default network was trained with) or ``synthetic-ii``
(the training degradation, fixed seed). The model runs through the real prediction engine
(``super_resolve``: tiled, default halo); bicubic up-sampling of the same LR is the baseline.

    python benchmarks/evaluate_model.py MODEL [MODEL ...] [--slices 20] [--degradation em-like]
        [--json OUT] [--markdown]

FlyEM data: FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples, CC BY 3.0
(degraded and cropped here).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from napari_emsr import load_model, super_resolve
from napari_emsr.metrics import frc_mean, psnr, ssim
from napari_emsr.resample import bicubic_upsample
from napari_emsr.training.degrade import synthetic_ii

from _data import acquire_lr, load_stack


def degrade(hr: np.ndarray, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "em-like":
        return acquire_lr(hr, 3, seed=seed)
    h, w = (n // 3 * 3 for n in hr.shape[1:])
    hr = hr[:, :h, :w]
    x = torch.from_numpy(hr / 255.0).float()[:, None]
    lr = synthetic_ii(x, 3, torch.Generator().manual_seed(seed))[:, 0].numpy()
    return (np.clip(lr, 0, 1) * 255).round().astype(np.uint8), hr


def score(reference: np.ndarray, images: np.ndarray) -> dict[str, float]:
    rows = np.array([(psnr(r, p, data_range=255), ssim(r, p, data_range=255), frc_mean(r, p)) for r, p in zip(reference, images)])
    return {"psnr": float(rows[:, 0].mean()), "ssim": float(rows[:, 1].mean()), "frc_mean": float(rows[:, 2].mean()),
            "psnr_std": float(rows[:, 0].std()), "ssim_std": float(rows[:, 1].std()), "frc_mean_std": float(rows[:, 2].std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--slices", type=int, default=20, help="evenly spaced validation slices (of 200)")
    parser.add_argument("--degradation", choices=["em-like", "synthetic-ii"], default="em-like")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    picks = np.linspace(0, 199, args.slices).round().astype(int).tolist()
    lr, hr = degrade(load_stack("validation_sample", picks), args.degradation, args.seed)
    reference = hr.astype(np.float32)
    results = {"degradation": args.degradation, "slices": picks, "lr_shape": list(lr.shape),
               "bicubic": score(reference, np.clip(bicubic_upsample(lr, 3), 0, 255).round()), "models": {}}
    for path in args.models:
        start = time.perf_counter()
        sr = super_resolve(lr, load_model(path), pixel_size=30.0)
        seconds = time.perf_counter() - start
        results["models"][path] = {**score(reference, sr.astype(np.float32)), "seconds": seconds,
                                   "output_mp_per_s": sr.size / seconds / 1e6}
    print(json.dumps(results, indent=2))
    if args.markdown:
        print("\n| method | PSNR (dB) | SSIM | mean FRC |\n|---|---|---|---|")
        for name, s in [("bicubic", results["bicubic"]), *results["models"].items()]:
            print(f"| {Path(name).name} | {s['psnr']:.2f} ± {s['psnr_std']:.2f} | {s['ssim']:.3f} ± {s['ssim_std']:.3f} "
                  f"| {s['frc_mean']:.3f} ± {s['frc_mean_std']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
