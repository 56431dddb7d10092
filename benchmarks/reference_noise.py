"""How much of a model's SSIM gain over bicubic survives a noisy reference.

Every held-out score in this project compares the output with the HR slice *as acquired*, noise
included. The shipped data differ in that noise (``results/noise_of_shipped_data.json``: about
2.5/255 for HeLa, 4.2 for FlyEM, 6.3 for C. elegans, 13.2 for mussel, at the mean intensity), and
neither the model nor bicubic can predict the reference's noise, so the same reconstruction scores
lower, and its gain over bicubic shrinks, on a noisier reference. This benchmark isolates that effect
on one data set: FlyEM's 10 held-out slices (the least noisy with a known pixel size) get the
``em-like`` x3 scan of ``evaluate_zoo.py``; the shipped model (``em-x3``) and bicubic are scored
against the reference as acquired and against the same reference with independent Gaussian noise
added so that its total noise matches each noisier data set's (sqrt(target^2 - 4.2^2)). The input and
the outputs do not change between rows: only the reference does.

    python benchmarks/reference_noise.py [--model em-x3] [--json benchmarks/results/reference_noise.json]

Data: FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples, CC BY 3.0 (cropped and
degraded here).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from evaluate_zoo import acquire, load, predict, score

from napari_emsr import load_model
from napari_emsr.model_io import resolve_model_path
from napari_emsr.resample import bicubic_upsample

#: the noise fit of each shipped data set (measure_noise.py); its ``noise_sigma_at_mean_255`` is used here
NOISE = json.loads((Path(__file__).parent / "results" / "noise_of_shipped_data.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="em-x3")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args()
    model = load_model(resolve_model_path(args.model))
    s = model.config.scale
    hr_all, pixel = load("flyem-fibsem")
    lr, hr = acquire(hr_all, s, "em-like", args.seed)
    out = predict(lr, model, pixel * s)
    bic = np.clip(bicubic_upsample(lr, s), 0, 255).round()
    own = NOISE["flyem-fibsem"]["noise_sigma_at_mean_255"]
    rng = np.random.default_rng(args.seed + 1)
    rows = []
    for name, stats in sorted(NOISE.items(), key=lambda kv: kv[1]["noise_sigma_at_mean_255"]):
        target = stats["noise_sigma_at_mean_255"]
        if target < own:  # noise cannot be taken out of the reference: such a set has no row
            print(f"{name}: reference noise {target:.2f}/255 is below FlyEM's {own:.2f}: no row")
            continue
        added = math.sqrt(target**2 - own**2)
        ref = hr.astype(np.float64)
        if added > 0:
            ref = np.clip(ref + rng.normal(0.0, added, ref.shape), 0, 255).round()
        m, b = score(ref, out, pixel), score(ref, bic, pixel)
        row = {"noise_of": name, "reference_sigma_255": target, "added_sigma_255": added, "model": m, "bicubic": b,
               "ssim_gain": m["ssim"] - b["ssim"], "psnr_gain": m["psnr"] - b["psnr"],
               "frc_mean_gain": m["frc_mean"] - b["frc_mean"]}  # fmt: skip
        rows.append(row)
        print(f"reference noise {target:5.2f}/255 (as {name:13s}): SSIM {m['ssim']:.3f} vs bicubic {b['ssim']:.3f} "
              f"(gain {row['ssim_gain']:+.3f}), PSNR gain {row['psnr_gain']:+.2f} dB, "
              f"mean FRC gain {row['frc_mean_gain']:+.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "scale": s, "seed": args.seed,
                                               "slices": int(hr.shape[0]), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
