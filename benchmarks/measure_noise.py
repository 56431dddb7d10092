"""Noise of the shipped EM data: a Poisson-Gaussian fit, var(noise) = a * intensity + b, per data set.

Grounds the dose and read-noise ranges of the ``synthetic-em`` acquisition model (docs/training.md).
For each data set (training folders only), every slice is split into 8 x 8 blocks; in each block the
noise variance is estimated from the residual of a pixel against the mean of its 4 neighbours
(for white noise var(residual) = 1.25 var(noise)) and the block mean is the intensity. Blocks are
binned by intensity; in each bin the 20th percentile of the block variances is taken (flat blocks,
where structure adds little), and a line var = a * mean + b is fitted over the bins.
On a 0..1 scale, a Poisson part a means an effective dose of 1 / a electrons per pixel at full
brightness, b = read-noise variance. Structure still inflates the flattest blocks somewhat, so
the dose is a lower bound (the true image is less noisy than this says).

    python benchmarks/measure_noise.py [--json benchmarks/results/noise_of_shipped_data.json]

Data: FlyEM (CC BY 3.0), EMPIAR-10094 via MitoEM (CC0), NEUBIAS C. elegans (CC BY 4.0), vEMstitch
mussel (CC0); see ../shared/data/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from skimage.io import imread

from _data import DATA

SETS = {
    "flyem-fibsem": ["flyem-medulla-fibsem/training_sample1", "flyem-medulla-fibsem/training_sample2"],
    "hela-sbfsem": ["hela-sbfsem-empiar10094/training"],
    "celegans-em": ["celegans-em-neubias/training"],
    "mussel-ssem": ["mussel-ssem-vemstitch/training"],
}


def block_stats(image: np.ndarray, block: int = 8) -> tuple[np.ndarray, np.ndarray]:
    x = image.astype(np.float64) / 255.0
    resid = x[1:-1, 1:-1] - 0.25 * (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:])
    core = x[1:-1, 1:-1]
    h, w = (n // block * block for n in core.shape)
    r = resid[:h, :w].reshape(h // block, block, w // block, block)
    c = core[:h, :w].reshape(h // block, block, w // block, block)
    return c.mean(axis=(1, 3)).ravel(), (r.var(axis=(1, 3)) / 1.25).ravel()


def fit(means: np.ndarray, variances: np.ndarray, bins: int = 12) -> dict:
    edges = np.quantile(means, np.linspace(0.02, 0.98, bins + 1))
    centres, lows = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (means >= lo) & (means < hi)
        if inside.sum() >= 50:
            centres.append(float(means[inside].mean()))
            lows.append(float(np.percentile(variances[inside], 20)))
    a, b = np.polyfit(centres, lows, 1)
    return {"poisson_a": float(a), "gaussian_b": float(b), "bins": list(zip(centres, lows)),
            "effective_dose": float(1 / a) if a > 0 else None,
            "read_noise_255": float(np.sqrt(max(b, 0)) * 255),
            "noise_sigma_at_mean_255": float(np.sqrt(max(a * np.mean(means) + b, 0)) * 255),
            "mean_intensity": float(np.mean(means))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json")
    args = parser.parse_args()
    root = DATA.parent
    results = {}
    for name, folders in SETS.items():
        means, variances = [], []
        for folder in folders:
            for f in sorted((root / folder).glob("*.png")):
                m, v = block_stats(imread(f))
                means.append(m)
                variances.append(v)
        results[name] = fit(np.concatenate(means), np.concatenate(variances))
        r = results[name]
        print(f"{name:14s} dose ~{r['effective_dose'] or float('inf'):7.1f} e-/px at full scale, read noise "
              f"{r['read_noise_255']:5.2f}/255, noise sigma at the mean intensity {r['noise_sigma_at_mean_255']:5.2f}/255")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
