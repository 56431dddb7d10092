"""What a smaller halo (--overlap) gains in speed and costs in exactness.

For each halo, a real 520 x 520 uint8 validation slice is super-resolved (x3) with tiles of
--tile LR pixels and compared with the whole-slice prediction (the network on the whole slice at
once, which the default exact halo reproduces): max and mean absolute difference in grey levels,
share of output pixels off by more than 1 grey level, seconds (median of --repeats), and how many
times each output pixel is computed, on this slice and on a large 4000 x 2000 slice.

A preset name gives random weights (variance-preserving, so that every output pixel depends on its
whole receptive field, which is pessimistic): MECHANISM ONLY, the error figures say how the tiling
behaves, not how a trained model would. A model file (``*.safetensors``, e.g. the shipped default
model) gives the figures of that trained network. The rows include the exact halo and the
``auto`` halo (the effective radius stored with a trained model, or measured on the slice).

    python benchmarks/predict_halo.py [--presets lite,MODEL.safetensors] [--tile 128] [--overlaps 0,8,16,32,48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from napari_emsr import build_emsr, iter_super_resolve, load_model
from napari_emsr.model.emsr import receptive_radius
from napari_emsr.predict import IntensityMap
from napari_emsr.predict.plan import _halo
from napari_emsr.tiling import default_blend, snap_up

from predict_common import machine, median, times, validation_slices, variance_preserving_
from predict_throughput import overhead


def run(lr, model, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(iter_super_resolve(lr, model, **options))[-1].payload


def bench(preset: str, args) -> list[dict]:
    torch.manual_seed(0)
    trained = preset.endswith(".safetensors")
    model = load_model(preset).eval() if trained else variance_preserving_(build_emsr(preset, scale=3).eval())
    config = model.config
    exact = snap_up(receptive_radius(config), config.window_size)
    lr = validation_slices(1)[0]
    auto, how = _halo(model, "auto", lambda: lr[196:324, 196:324] / 255.0)
    print(f"{preset}: auto halo {auto} ({how}); exact {exact}", flush=True)
    with torch.inference_mode():
        net = model(torch.from_numpy(lr / 255.0).float()[None, None])[0, 0].numpy()
    whole = IntensityMap(0, 255, np.dtype(np.uint8)).from_network(net).astype(int)
    blend = default_blend(args.tile, config.window_size)
    rows = []
    for halo in sorted({*args.overlaps, exact, auto}):
        out = run(lr, model, tile=args.tile, overlap=halo)
        seconds = median(times(lambda: run(lr, model, tile=args.tile, overlap=halo), args.repeats, warmup=0))
        diff = np.abs(out.astype(int) - whole)
        rows.append({
            "preset": Path(preset).name, "trained": trained, "tile": args.tile, "halo": halo, "auto": halo == auto,
            "exact": halo >= receptive_radius(config),
            "max_abs_grey": int(diff.max()), "mean_abs_grey": float(diff.mean()), "share_off_by_more_than_1": float((diff > 1).mean()),
            "seconds_520": seconds, "computed_per_output_pixel_520": overhead((520, 520), args.tile, halo, blend, config.window_size),
            "computed_per_output_pixel_large": overhead((2000, 4000), args.tile, halo, blend, config.window_size),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="lite")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlaps", type=lambda s: [int(v) for v in s.split(",")], default=[0, 8, 16, 32, 48])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    rows = []
    for preset in args.presets.split(","):
        rows += bench(preset, args)
    print(f"\n{'model':28} {'halo':>5} {'exact':>5} {'max':>4} {'mean':>7} {'>1 grey':>8} {'s (520)':>8} {'x (520)':>8} {'x (large)':>9}")
    for r in rows:
        print(f"{r['preset']:28} {r['halo']:>5} {str(r['exact']):>5} {r['max_abs_grey']:>4} {r['mean_abs_grey']:>7.3f} "
              f"{100 * r['share_off_by_more_than_1']:>7.2f}% {r['seconds_520']:>8.2f} "
              f"{r['computed_per_output_pixel_520']:>8.2f} {r['computed_per_output_pixel_large']:>9.2f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            note = "presets have random weights (mechanism only); *.safetensors rows are trained models"
            json.dump({"machine": machine(), "note": note, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
