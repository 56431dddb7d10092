"""The default CPU tile, per precision: end-to-end output MP/s of the default model at several tiles.

``napari_emsr.device.default_tile`` is the first guess when no ``--tile`` is given (``--tile auto``
times candidates on the user's own slice). It was measured in fp32, where 256-pixel tiles beat
512 (the feature maps stay in cache). Under bf16 on AMX the balance moves: the kernels do more per
byte, and a larger tile spends less of its work on the halo. This measures both precisions on two
fields of real held-out FlyEM (evaluate_zoo's EM-like x3 scan of mosaics of validation slices):
slices of 519 x 519 LR (peers.py's field) and one large slice of 1557 x 1557 LR (what users'
fields look like). Per field, every (precision, tile) runs once per round, in turn, after one
warm-up each; the median of --repeats rounds is reported, with each tile's ratio to 256 in the
same precision.

    python benchmarks/default_tile.py [--repeats 3] [--threads 2] [--json results/default_tile.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from peers import volume
from predict_common import machine, median

from napari_emsr import load_model, super_resolve
from napari_emsr.model_io import resolve_model_path

TILES = {"fp32": (256, 512), "bf16": (256, 384, 512, 768)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="em-x3")
    parser.add_argument("--json", default="benchmarks/results/default_tile.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(resolve_model_path(args.model))
    fields = {"4 slices of 519 x 519 LR": volume(4, 3)[0], "1 slice of 1557 x 1557 LR": volume(1, 9)[0]}
    runs = [(precision, tile) for precision, tiles in TILES.items() for tile in tiles]
    results: dict[str, dict] = {}
    for label, lr in fields.items():
        out_mp = lr.shape[0] * (3 * lr.shape[1]) * (3 * lr.shape[2]) / 1e6

        def run(precision: str, tile: int, lr=lr) -> float:
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                super_resolve(lr, model, tile=tile, precision=precision, pixel_size=30)
            return time.perf_counter() - started

        for precision, tile in runs:  # warm-up: oneDNN builds its kernels per shape
            run(precision, tile)
        seconds: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
        for _ in range(args.repeats):
            for key in runs:
                seconds[key].append(run(*key))
        rows = {}
        for precision, tile in runs:
            s = median(seconds[(precision, tile)])
            rows[f"{precision} tile {tile}"] = {"seconds": seconds[(precision, tile)], "median_s": s,
                                                "output_mp_s": out_mp / s}  # fmt: skip
        for precision, tile in runs:
            row = rows[f"{precision} tile {tile}"]
            row["ratio_to_256"] = row["output_mp_s"] / rows[f"{precision} tile 256"]["output_mp_s"]
        results[label] = {"output_mp": out_mp, "rows": rows}
        print(f"\n{label} ({out_mp:.1f} output MP)")
        print("| precision, tile | median s | output MP/s | vs 256 |\n|---|---|---|---|")
        for name, row in rows.items():
            print(f"| {name} | {row['median_s']:.2f} | {row['output_mp_s']:.2f} | {row['ratio_to_256']:.2f}x |",
                  flush=True)  # fmt: skip
    Path(args.json).write_text(json.dumps({"model": args.model, "repeats": args.repeats, "fields": results,
                                           "machine": machine()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
