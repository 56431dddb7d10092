"""Peak memory (RSS) of a file-to-file prediction does not grow with the number of slices.

Writes a 16-slice and a 128-slice OME-TIFF of the same real slices (--size x --size, cycling
through the validation stack), then super-resolves each (lite preset, x3, random weights: memory
does not depend on them) into an OME-Zarr and into an OME-TIFF, each run in a fresh process that
reports its own peak RSS (``ru_maxrss``) and its current RSS after every slice (from /proc, so
Linux only): the median of the second half of the run and the slope of a line fitted to the trace
show whether memory grows with the slices. Peak RSS fluctuates by ~100 MB from run to run (where the
allocator places the network's large temporary buffers), so read the peaks together with the trace.
The ratio 128 / 16 of the peaks should be about 1 (issue: <= 1.2).

    python benchmarks/predict_memory.py [--counts 16,128] [--size 256] [--json results/predict_memory.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(source: str, model: str, output: str) -> None:
    """Run one prediction; print peak RSS (MB) before and after it, the RSS trace and the seconds."""
    import warnings

    import numpy as np

    import napari_emsr as emsr

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    trace = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for event in emsr.iter_super_resolve(source, model, output=output):
            if event.kind == "slice":
                trace.append(current_rss_mb())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    slope = float(np.polyfit(np.arange(len(trace)), trace, 1)[0]) if len(trace) > 1 else 0.0
    second_half = float(np.median(trace[len(trace) // 2 :]))
    print(json.dumps({
        "rss_before_mb": before, "peak_rss_mb": peak, "median_rss_second_half_mb": second_half,
        "rss_slope_mb_per_100_slices": 100 * slope, "seconds": seconds,
    }))  # fmt: skip


def write_input(path: Path, count: int, size: int) -> None:
    import tifffile

    from predict_common import validation_slices

    base = validation_slices(min(count, 16), size)
    with tifffile.TiffWriter(path) as tif:  # page by page: the input itself is never held whole
        for i in range(count):
            tif.write(base[i % len(base)], contiguous=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="16,128")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", nargs=3, metavar=("SOURCE", "MODEL", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    import torch

    import napari_emsr as emsr
    from predict_common import machine

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = emsr.save_model(emsr.build_emsr("lite", scale=3), Path(tmp) / "lite.safetensors")
        for count in (int(c) for c in args.counts.split(",")):
            source = Path(tmp) / f"lr{count}.tif"
            write_input(source, count, args.size)
            for ending in ("ome.zarr", "ome.tif"):
                output = Path(tmp) / f"sr{count}.{ending}"
                command = [sys.executable, str(Path(__file__)), "--child", str(source), str(model), str(output)]
                result = subprocess.run(command, capture_output=True, text=True, cwd=HERE, check=True)
                row = {"slices": count, "size": args.size, "output": ending, **json.loads(result.stdout.splitlines()[-1])}
                rows.append(row)
                print(json.dumps(row), flush=True)
    for ending in ("ome.zarr", "ome.tif"):
        mine = [r for r in rows if r["output"] == ending]
        peaks = [r["peak_rss_mb"] for r in mine]
        print(
            f"{ending}: peak RSS " + " / ".join(f"{p:.0f} MB" for p in peaks) + f" (ratio {peaks[-1] / peaks[0]:.2f}); "
            "steady RSS " + " / ".join(f"{r['median_rss_second_half_mb']:.0f} MB" for r in mine)
            + "; slope " + " / ".join(f"{r['rss_slope_mb_per_100_slices']:+.1f} MB per 100 slices" for r in mine)
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine(), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
