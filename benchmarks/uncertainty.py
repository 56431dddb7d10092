"""How well the uncertainty map (the self-ensemble's spread) ranks the real errors, on held-out EM.

For each modality's held-out slices (evaluate_zoo's sets: FlyEM FIB-SEM validation_sample, HeLa
SBF-SEM, C. elegans and mussel validation), a centred HR crop is degraded by evaluate_zoo's
EM-like x3 acquisition (beam blur, pixel integration, shot, line and read noise), super-resolved
by the shipped model with ``uncertainty=True`` (the 8 flips / rotations, their mean and per-pixel
standard deviation), and the map is scored against the absolute error ``|SR - HR|``:

- **top-decile share**: of the 10 % of pixels the map ranks most uncertain, the fraction that are
  among the 10 % largest errors. A map that knows nothing scores 0.10; a perfect one 1.0.
- **error ratio**: the mean error in the map's top decile over the mean error in the rest.
- **Spearman**: the rank correlation of map and error over all pixels.

Each is computed per pixel, and against the *local* error (the error smoothed by a Gaussian of
2 HR pixels). The HR reference is itself one noisy acquisition, and its noise is part of every
per-pixel error, which no prediction can foresee. The local error averages that noise down and
keeps the structure-scale errors a user looks for. A second reference takes the noise out
altogether: the HR crop denoised (non-local means at its measured noise level), and the LR made
from that, so the error is the network's own.

The maps compared: the spread as computed, the spread smoothed by a Gaussian of 2 pixels, the
spread of both shipped x3 models together (16 predictions: a cheap "several checkpoints"), and, as
a baseline that knows no uncertainty, the gradient magnitude of the SR output (errors are larger
at edges, whatever the network).

    python benchmarks/uncertainty.py [--crop 240] [--json benchmarks/results/uncertainty.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from evaluate_zoo import MODALITIES, acquire, load
from scipy.ndimage import gaussian_filter, sobel
from scipy.stats import spearmanr
from skimage.restoration import denoise_nl_means

from napari_emsr import load_model, super_resolve
from napari_emsr.metrics.noise import noise_sigma
from napari_emsr.model_io import resolve_model_path

SCALE = 3
MODELS = ("em-x3", "flyem-fibsem-x3")


def _scores(umap: np.ndarray, error: np.ndarray) -> dict[str, float]:
    top = umap >= np.quantile(umap, 0.9)
    large = error >= np.quantile(error, 0.9)
    return {
        "top_decile_share": float(large[top].mean()),
        "error_ratio": float(error[top].mean() / max(error[~top].mean(), 1e-12)),
        "spearman": float(spearmanr(umap.ravel(), error.ravel()).statistic),
    }


def _maps(sr: np.ndarray, spread: np.ndarray, both: np.ndarray) -> dict[str, np.ndarray]:
    gradient = np.hypot(sobel(sr.astype(np.float64), axis=0), sobel(sr.astype(np.float64), axis=1))
    return {
        "spread": spread,
        "spread, Gaussian 2 px": gaussian_filter(spread, 2.0),
        "spread of both x3 models (16 predictions)": both,
        "baseline: gradient magnitude of SR": gradient,
    }


def _denoised(hr: np.ndarray) -> np.ndarray:
    """``hr`` (uint8) with its noise taken out: non-local means at its measured noise level."""
    sigma = noise_sigma(hr) / 255.0
    clean = denoise_nl_means(hr / 255.0, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
    return np.clip(clean * 255, 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop", type=int, default=240, help="centred HR crop per slice (a multiple of 3)")
    parser.add_argument("--slices", type=int, default=4, help="held-out slices per modality")
    parser.add_argument("--json", default="benchmarks/results/uncertainty.json")
    args = parser.parse_args()
    models = {name: load_model(resolve_model_path(name)) for name in MODELS}
    results: dict[str, dict[str, dict]] = {"as acquired": {}, "denoised": {}}
    started = time.perf_counter()
    for (reference, out), modality in ((r, m) for r in results.items() for m in MODALITIES):
        stack, pixel = load(modality)
        picks = np.linspace(0, len(stack) - 1, min(args.slices, len(stack))).round().astype(int)
        c0 = (stack.shape[1] - args.crop) // 2
        hr_all = stack[picks, c0 : c0 + args.crop, c0 : c0 + args.crop]
        per_map: dict[str, dict[str, list[float]]] = {}
        for i, hr_slice in enumerate(hr_all):
            if reference == "denoised":
                hr_slice = _denoised(hr_slice)
            lr, hr = acquire(hr_slice[None], SCALE, "em-like", seed=100 + i)
            pixel_lr = None if pixel is None else pixel * SCALE
            runs = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pixel-size warnings: these sets record no pixel size
                for name, model in models.items():
                    runs[name] = super_resolve(lr[0], model, uncertainty=True, pixel_size=pixel_lr, precision="fp32")
            sr, spread = runs[MODELS[0]]
            # 16 predictions: the variance about their common mean from each model's 8 (mean, std)
            means = np.stack([r[0].astype(np.float64) for r in runs.values()])
            stds = np.stack([r[1].astype(np.float64) for r in runs.values()])
            both = np.sqrt((stds**2 + means**2).mean(axis=0) - means.mean(axis=0) ** 2)
            error = np.abs(sr.astype(np.float64) - hr[0])
            local = gaussian_filter(error, 2.0)
            for label, umap in _maps(sr, spread, both).items():
                row = per_map.setdefault(label, {})
                for against, target in (("pixel", error), ("local", local)):
                    for key, value in _scores(umap, target).items():
                        row.setdefault(f"{key}_{against}", []).append(value)
        out[modality] = {label: {k: float(np.mean(v)) for k, v in row.items()} for label, row in per_map.items()}
        print(f"{reference}, {modality}: {len(hr_all)} slices of {args.crop}^2 ({time.perf_counter() - started:.0f} s)",
              flush=True)  # fmt: skip
    pooled = {}
    for reference, per_modality in results.items():
        first = next(iter(per_modality.values()))
        pooled[reference] = {label: {k: float(np.mean([per_modality[m][label][k] for m in per_modality])) for k in row}
                             for label, row in first.items()}  # fmt: skip
        print(f"\nreference {reference}: pooled over {len(per_modality)} modalities (a random map: share 0.100)")
        print("| map | top-decile share (pixel / local) | error ratio (pixel / local) | Spearman (pixel / local) |")
        print("|---|---|---|---|")
        for label, r in pooled[reference].items():
            print(f"| {label} | {r['top_decile_share_pixel']:.3f} / {r['top_decile_share_local']:.3f} | "
                  f"{r['error_ratio_pixel']:.2f} / {r['error_ratio_local']:.2f} | "
                  f"{r['spearman_pixel']:.3f} / {r['spearman_local']:.3f} |")  # fmt: skip
    Path(args.json).write_text(json.dumps({
        "acquisition": f"evaluate_zoo em-like x{SCALE}, one seed per slice", "crop": args.crop,
        "slices_per_modality": args.slices, "model": MODELS[0], "random_top_decile_share": 0.1,
        "pooled_over_modalities": pooled, "per_modality": results,
        "machine": {"cpu": platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
