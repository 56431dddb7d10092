"""Distributed prediction: 1 against 2 dask workers on this machine, and a projection to N GPUs.

Measured, in one run (so the ratio is taken under the same conditions):

- a real volume crop (FlyEM FIB-SEM validation slices, CC BY 3.0, cropped to --size) written as an
  OME-TIFF, super-resolved into an OME-Zarr with ``iter_super_resolve_distributed`` on the
  LocalCluster of ``--scheduler local:1`` and ``local:2`` (worker processes with 1 thread and
  1 torch thread each); the
  two clusters stay up and runs alternate (1, 2, 1, 2, ...) so that background load hits both
  alike; median of --repeats after a warm-up run (which loads the model on every worker); also one
  worker started with dask's default worker environment (``MALLOC_TRIM_THRESHOLD_=65536``), which
  ``local:N`` drops (see ``napari_emsr.predict.distributed.local_cluster``);
- the single-process run (``super_resolve``, 1 torch thread) on the same input, as a reference
  for the overhead of going through the cluster; outputs are checked to agree within 1 grey level.

Model: preset --preset at x3 with random, variance-preserving weights (seed 0), saved with
save_model(trained=False): speed does not depend on the weights; this is not a trained model.

Projection for the issue's full volume (4000 x 2000 x 1300 LR voxels, x3) on N devices:
``hours(N) = output_pixels / (N * r * eta) / 3600`` with r the per-device end-to-end output
throughput (MP/s) and eta the parallel efficiency. For CPU workers r and eta are the measured ones.
No GPU is available here: for GPUs r comes from --gpu-mps if given (a measured figure), else from
an *assumed* achieved --gpu-tflops, the network's FLOPs per output pixel (torch's flop counter)
and how many times the tiling computes each output pixel at tile 1024 on a 4000 x 2000 slice.

    python benchmarks/predict_distributed.py [--slices 8] [--size 192] [--repeats 3] [--preset lite]
        [--halo 16] [--gpu-tflops 10] [--gpu-mps X] [--json results/predict_distributed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predict_common import machine, validation_slices, variance_preserving_  # noqa: E402

FULL_LR = (1300, 2000, 4000)  # z, y, x: the example volume
SCALE = 3


def _run_distributed(client, lr: Path, model: Path, out: Path, options: dict) -> float:
    from napari_emsr.predict import super_resolve_distributed

    start = time.perf_counter()
    super_resolve_distributed(lr, model, output=out, scheduler=client, overwrite=True, **options)
    return time.perf_counter() - start


def _read(path: Path) -> np.ndarray:
    from napari_emsr import open_volume

    with open_volume(path) as vol:
        return vol.data.compute()


def measure(args, folder: Path) -> dict:
    import distributed

    from napari_emsr import build_emsr, save_model, super_resolve
    from napari_emsr.predict.distributed import local_cluster

    stack = validation_slices(args.slices, args.size)
    lr = folder / "lr.ome.tif"
    tifffile.imwrite(lr, stack, ome=True, metadata={"axes": "ZYX"})
    net = variance_preserving_(build_emsr(args.preset, scale=SCALE).eval(), seed=0)
    model = save_model(net, folder / "model.safetensors", trained=False)
    options = dict(tile=args.tile, overlap=args.halo, device="cpu")
    out_pixels = stack.shape[0] * (SCALE * args.size) ** 2

    torch.set_num_threads(1)
    single = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        reference = super_resolve(lr, model, **options)
        single.append(time.perf_counter() - start)
    single = single[1:]

    clusters, clients = {}, {}
    for workers in (1, 2):
        clusters[workers] = local_cluster(workers)  # what `--scheduler local:N` starts
        clients[workers] = distributed.Client(clusters[workers])
    # for comparison: one worker with dask's default worker environment (MALLOC_TRIM_THRESHOLD_ set)
    clusters["1-dask-env"] = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    )
    clients["1-dask-env"] = distributed.Client(clusters["1-dask-env"])
    try:
        threads = {w: sorted(set(c.run(torch.get_num_threads).values())) for w, c in clients.items()}
        assert all(t == [1] for t in threads.values()), f"workers should run 1 torch thread each: {threads}"
        seconds: dict = {key: [] for key in clients}
        for workers, client in clients.items():  # warm-up: every worker loads the model once
            _run_distributed(client, lr, model, folder / f"w{workers}.ome.zarr", options)
        for _ in range(args.repeats):
            for workers, client in clients.items():
                seconds[workers].append(_run_distributed(client, lr, model, folder / f"w{workers}.ome.zarr", options))
        worst = max(
            int(np.abs(_read(folder / f"w{w}.ome.zarr").astype(int) - reference.astype(int)).max()) for w in clients
        )
    finally:
        for workers in clients:
            clients[workers].close()
            clusters[workers].close()
    med = {w: statistics.median(s) for w, s in seconds.items()}
    speedup = med[1] / med[2]
    return {
        "input": {"slices": args.slices, "size": args.size, "source": "FlyEM validation_sample (CC BY 3.0)"},
        "model": {"preset": args.preset, "scale": SCALE, "weights": "random (variance-preserving, seed 0)"},
        "options": options,
        "output_megapixels": out_pixels / 1e6,
        "single_process_seconds": single,
        "single_process_median_s": statistics.median(single),
        "seconds": {str(w): s for w, s in seconds.items()},
        "median_s": {str(w): m for w, m in med.items()},
        "output_mps": {str(w): out_pixels / 1e6 / m for w, m in med.items()},
        "single_process_mps": out_pixels / 1e6 / statistics.median(single),
        "speedup_2_vs_1": speedup,
        "dask_default_env_slowdown_1_worker": med["1-dask-env"] / med[1],
        "parallel_efficiency_2": speedup / 2,
        "max_diff_to_single_process_grey_levels": worst,
        "load_average_at_end": os.getloadavg(),
    }


def computed_per_output_pixel(tile: int, halo: int, window: int, shape: tuple[int, int] = FULL_LR[1:]) -> float:
    """How many times each output pixel is computed on an LR slice of ``shape`` (halos and blends);
    by default a 4000 x 2000 slice, the issue's example."""
    from napari_emsr.tiling import default_blend, tile_grid

    grid = tile_grid(shape, tile=tile, halo=halo, blend=default_blend(tile, window), window=window)
    return sum(t.shape[0] * t.shape[1] for t in grid) / (shape[0] * shape[1])


def project(measured: dict, args) -> dict:
    from napari_emsr import build_emsr
    from napari_emsr.describe import count_flops

    out_pixels = FULL_LR[0] * FULL_LR[1] * SCALE * FULL_LR[2] * SCALE
    counts = [1, 2, 4, 8, 16, 32, 64]
    size, tile = measured["input"]["size"], measured["options"]["tile"]
    halo = measured["options"]["overlap"]
    # the measured slices are small: rescale to the tiling overhead of a 4000 x 2000 slice
    overhead = computed_per_output_pixel(tile, halo, 4) / computed_per_output_pixel(tile, halo, 4, (size, size))
    cpu_r, eta = measured["output_mps"]["1"] / overhead, min(1.0, measured["parallel_efficiency_2"])
    projection = {
        "volume_lr_zyx": list(FULL_LR),
        "scale": SCALE,
        "output_pixels": out_pixels,
        "formula": "hours(N) = output_pixels / (N * r_MPs * 1e6 * eta) / 3600 (eta = 1 for N = 1)",
        "cpu_worker": {
            "r_MPs": cpu_r,
            "r_measured_MPs": measured["output_mps"]["1"],
            "tiling_overhead_vs_measured": overhead,
            "eta_measured_2_workers": eta,
            "basis": f"measured here: preset {measured['model']['preset']}, 1 worker = 1 CPU thread (end to end "
            f"through the cluster), divided by {overhead:.3f} for the tiling of a 4000 x 2000 slice (tile {tile}, "
            f"halo {halo}) against the measured {size} x {size} slices; 'hours_ideal': eta = 1 (workers on "
            "separate cores or machines); 'hours_measured_eta': "
            "the 2-worker efficiency measured on this machine, applied to every N >= 2",
            "hours_ideal": {str(n): out_pixels / (n * cpu_r * 1e6) / 3600 for n in counts},
            "hours_measured_eta": {
                str(n): out_pixels / (n * cpu_r * 1e6 * (1.0 if n == 1 else eta)) / 3600 for n in counts
            },
        },
        "gpu": {},
    }
    for preset in ("lite", "paper"):
        flops = count_flops(build_emsr(preset, scale=SCALE).eval(), 64)["per_output_pixel"]
        comp = computed_per_output_pixel(1024, args.halo, 4)
        if args.gpu_mps is not None:
            r, basis = args.gpu_mps, "given with --gpu-mps (a measured per-GPU figure)"
        else:
            r = args.gpu_tflops * 1e12 / (flops * comp) / 1e6
            basis = (
                f"ASSUMED: {args.gpu_tflops} TFLOP/s achieved per GPU (not measured; no GPU here), "
                f"{flops:.0f} FLOPs per output pixel, each output pixel computed {comp:.3f} times "
                f"(tile 1024, halo {args.halo}); eta = 1 (independent slices, no communication)"
            )
        projection["gpu"][preset] = {
            "r_MPs": r,
            "flops_per_output_pixel": flops,
            "computed_per_output_pixel": comp,
            "basis": basis,
            "hours": {str(n): out_pixels / (n * r * 1e6) / 3600 for n in counts},
            "write_MBps_per_gpu_uint8": r,
        }
    return projection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--size", type=int, default=192, help="LR crop side in pixels (at most 520)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--halo", type=int, default=16, help="tile halo (16: within 1 grey level, predict_halo.py)")
    parser.add_argument("--gpu-tflops", type=float, default=10.0, help="ASSUMED achieved TFLOP/s per GPU")
    parser.add_argument("--gpu-mps", type=float, help="a measured per-GPU output MP/s (replaces the assumption)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--project-only", type=Path, metavar="JSON",
        help="measure nothing: recompute the projection from the measurements in JSON (e.g. with --gpu-mps)",
    )  # fmt: skip
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="napari_emsr")
    if args.project_only is not None:
        previous = json.loads(args.project_only.read_text())
        measured, machine_info = previous["measured"], previous["machine"]
    else:
        with tempfile.TemporaryDirectory() as folder:
            measured = measure(args, Path(folder))
        machine_info = machine()
    result = {"machine": machine_info, "measured": measured, "projection": project(measured, args)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
