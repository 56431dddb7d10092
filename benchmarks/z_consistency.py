"""z-consistency of the slice-wise default model against bicubic, on consecutive held-out slices.

For each modality with enough consecutive held-out slices (FlyEM validation_sample: 200 slices at
10 nm; the other sets hold 4-8 non-consecutive slices and are left out), --slices consecutive HR
slices are degraded by evaluate_zoo's EM-like acquisition (x3, each slice its own scan: the
independent noise per slice an LR scan really has), super-resolved slice by slice by each model,
and scored by :func:`napari_emsr.metrics.z_consistency` against the LR stack: flicker index
(1: the LR's own slice-to-slice change) and xz / yz mean FRC. The HR stack itself is scored too
(down-sampled, it is what a perfect result would give).

    python benchmarks/z_consistency.py [--slices 32] [--models em-x3] [--json results/z_consistency.json]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import evaluate_zoo
from predict_common import DATA

from napari_emsr import load_model, super_resolve
from napari_emsr.metrics import z_consistency
from napari_emsr.model_io import resolve_model_path
from napari_emsr.resample import bicubic_upsample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--start", type=int, default=84, help="first slice of validation_sample")
    parser.add_argument("--models", default="em-x3")
    parser.add_argument("--json", default="benchmarks/results/z_consistency.json")
    args = parser.parse_args()
    from skimage.io import imread

    files = sorted((DATA / "validation_sample").glob("*.png"))[args.start : args.start + args.slices]
    hr = np.stack([imread(f)[:504, :504] for f in files])
    lr = np.stack([evaluate_zoo.acquire(p[None], 3, "em-like", seed=i)[0][0] for i, p in enumerate(hr)])
    low = lr.astype(np.float64)
    rows = {"HR (down-sampled: a perfect result)": z_consistency(hr, low, scale=3).to_dict(),
            "bicubic": z_consistency(np.clip(bicubic_upsample(low, 3), 0, 255), low, scale=3).to_dict()}  # fmt: skip
    for name in args.models.split(","):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sr = super_resolve(lr, load_model(resolve_model_path(name)))
        rows[f"{name} (slice-wise)"] = z_consistency(sr, low, scale=3).to_dict()
    for name, r in rows.items():
        print(f"| {name} | {r['flicker_index']:.3f} | {r['frc_xz']:.3f} | {r['frc_yz']:.3f} |")
    Path(args.json).write_text(json.dumps({"slices": [args.start, args.start + args.slices], "lr_shape": list(lr.shape),
                                           "rows": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
