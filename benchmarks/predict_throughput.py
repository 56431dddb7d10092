"""Prediction throughput (output megapixels per second) of the paper and lite presets, per tile size.

For each preset (x3, random weights: speed does not depend on them) or model file, and tile size
(the core of a tile in LR pixels), with the halo the engine would use (``--overlap``: ``auto``, the
default (a model file's stored effective radius, or one measured on the slice), ``exact`` or N):

- network: forward passes of full windows ((tile + 2 * (halo + blend))^2 LR pixels, --batch of
  them), median of --repeats: output MP/s of the window, achieved GFLOP/s (FLOPs counted by
  torch's flop counter) and its fraction of this machine's conv peak, measured in the same run;
- overhead: how many times each output pixel is computed on a large slice (--large, default
  4000 x 2000 LR, the issue's example), from the tile grid (sum of window areas / slice area),
  and the end-to-end MP/s to expect there: network MP/s / overhead;
- end to end: ``super_resolve`` of one real 520 x 520 uint8 validation slice, median of --repeats.

    python benchmarks/predict_throughput.py [--presets paper,lite,MODEL.safetensors] [--tiles 128,256,512] [--repeats 3]
                                            [--overlap auto|exact|N]
                                            [--batch 1] [--device auto] [--json results/predict_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch

from napari_emsr import build_emsr, load_model, super_resolve
from napari_emsr.describe import count_flops
from napari_emsr.device import select_device
from napari_emsr.model.emsr import receptive_radius
from napari_emsr.predict.plan import make_plan
from napari_emsr.tiling import default_blend, tile_grid, window_span

from predict_common import conv_peak_gflops, machine, median, times, validation_slices


def overhead(shape: tuple[int, int], tile: int, halo: int, blend: int, window: int) -> float:
    """Computed LR pixels per output LR pixel for a slice of ``shape``."""
    grid = tile_grid(shape, tile=tile, halo=halo, blend=blend, window=window)
    return sum(t.shape[0] * t.shape[1] for t in grid) / (shape[0] * shape[1])


def synchronised(fn, device: torch.device):
    def run():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def bench_preset(preset: str, tiles: list[int], args, peak: float, device: torch.device) -> list[dict]:
    model = load_model(preset) if preset.endswith(".safetensors") else build_emsr(preset, scale=3).eval()
    flops_per_out = count_flops(model, 64)["per_output_pixel"]
    config = model.config
    lr = validation_slices(1)[0]
    overlap = args.overlap if args.overlap in ("auto", "exact") else int(args.overlap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = make_plan(lr, model, overlap=overlap, device="cpu")
    halo = plan.geometry.halo
    plan.close()
    net = model.to(device).to(memory_format=torch.channels_last)
    rows = []
    for tile in tiles:
        blend = default_blend(tile, config.window_size)
        span = window_span(tile, halo, blend, config.window_size)
        x = torch.rand(args.batch, 1, span, span, device=device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            t = median(times(synchronised(lambda: net(x), device), args.repeats))
        out_px = args.batch * (3 * span) ** 2
        achieved = flops_per_out * out_px / t / 1e9
        factor = overhead(args.large, tile, halo, blend, config.window_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = lambda: super_resolve(lr, model, tile=tile, batch=args.batch, device=device, overlap=halo)  # noqa: E731
            e2e = median(times(run, args.repeats, warmup=0))
        rows.append({
            "preset": preset, "tile": tile, "halo": halo, "receptive_radius": receptive_radius(config), "window": span, "batch": args.batch,
            "network_mp_s": out_px / 1e6 / t, "gflop_s": achieved, "fraction_of_conv_peak": achieved / peak,
            "computed_per_output_pixel": factor, "expected_large_mp_s": out_px / 1e6 / t / factor,
            "end_to_end_520_mp_s": (3 * 520) ** 2 / 1e6 / e2e, "end_to_end_520_s": e2e,
            "computed_per_output_pixel_520": overhead((520, 520), tile, halo, blend, config.window_size),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="paper,lite")
    parser.add_argument("--tiles", default="128,256,512")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--overlap", default="auto", help="auto (default), exact or a number of LR pixels")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--large", type=lambda s: tuple(int(v) for v in s.split("x")), default=(2000, 4000),
                        help="HxW of the large slice for the overhead figure (default 2000x4000)")  # fmt: skip
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    device = select_device(args.device)
    torch.manual_seed(0)
    peak = conv_peak_gflops()
    print(f"conv peak on this machine: {peak['best']:.0f} GFLOP/s (best of 5), {peak['median']:.0f} median", flush=True)
    rows = []
    for preset in args.presets.split(","):
        rows += bench_preset(preset, [int(t) for t in args.tiles.split(",")], args, peak["best"], device)
    print(f"\n{'preset':6} {'tile':>5} {'halo':>4} {'window':>6} {'net MP/s':>9} {'GFLOP/s':>8} {'% peak':>7} "
          f"{'x comp':>7} {'large MP/s':>10} {'520 MP/s':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['preset'][-20:]:6} {r['tile']:>5} {r['halo']:>4} {r['window']:>6} {r['network_mp_s']:>9.3f} {r['gflop_s']:>8.0f} "
              f"{100 * r['fraction_of_conv_peak']:>6.0f}% {r['computed_per_output_pixel']:>7.2f} "
              f"{r['expected_large_mp_s']:>10.3f} {r['end_to_end_520_mp_s']:>9.3f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "conv_peak_gflop_s": peak, "device": str(device), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
