"""fp32 against bf16 (autocast) prediction, end to end through the engine: speed and what it costs.

For each zoo model given (default: the x3 default model, em-x3), on held-out slices of every shipped
modality, degraded by evaluate_zoo's EM-like acquisition (x3):

- speed: ``super_resolve`` of a larger field (--slices slices of 3 x 3 mosaics of validation
  slices, 519 x 519 LR, as peers.py) at ``precision="fp32"`` and ``"bf16"``, alternating, median of
  --repeats after one warm-up each (oneDNN builds its kernels per shape on the first call); output
  MP/s and the bf16 / fp32 ratio, measured in one run;
- cost: the bf16 output against the fp32 output (max and mean grey-level difference, PSNR), and
  both against the reference (PSNR, SSIM): the change in PSNR is what ``auto`` must keep under
  0.05 dB to choose bf16.

    python benchmarks/precision.py [--models em-x3] [--repeats 3] [--threads 2] [--json results/precision.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import evaluate_zoo
from predict_common import machine, median

from napari_emsr import load_model, super_resolve
from napari_emsr.device import cpu_has_amx_bf16, resolve_precision, select_device
from napari_emsr.metrics import psnr, ssim
from napari_emsr.model_io import resolve_model_path

#: slices per modality (the centre CROP of each, as evaluate_zoo scores)
SLICES = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="em-x3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=4, help="slices of the speed field (3 x 3 mosaics, 519^2 LR)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default="benchmarks/results/precision.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    results: dict = {"machine": machine(), "device": str(device), "amx_bf16": cpu_has_amx_bf16(),
                     "auto": list(resolve_precision("auto", device)), "models": {}}  # fmt: skip
    for name in args.models.split(","):
        model = load_model(resolve_model_path(name))
        scale = model.config.scale
        rows = {}
        for modality in evaluate_zoo.MODALITIES:
            hr, _ = evaluate_zoo.load(modality)
            hr = hr[:SLICES, : hr.shape[1] // scale * scale, : hr.shape[2] // scale * scale]
            lr = evaluate_zoo.acquire(hr, scale, "em-like", seed=0)[0]
            outputs = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # no pixel sizes given: the pixel-size warning would repeat
                for precision in ("fp32", "bf16"):
                    outputs[precision] = super_resolve(lr, model, precision=precision, device=str(device))
            a, b, ref = (outputs["fp32"].astype(np.float64), outputs["bf16"].astype(np.float64),
                         hr.astype(np.float64))  # fmt: skip
            diff = np.abs(a - b)
            row = {
                "slices": list(hr.shape),
                "max_diff": float(diff.max()),
                "mean_diff": float(diff.mean()),
                "psnr_bf16_vs_fp32": float(10 * np.log10(255.0**2 / max(np.mean(diff**2), 1e-12))),
                "psnr_fp32": float(np.mean([psnr(r, x, data_range=255) for r, x in zip(ref, a, strict=True)])),
                "psnr_bf16": float(np.mean([psnr(r, x, data_range=255) for r, x in zip(ref, b, strict=True)])),
                "ssim_fp32": float(np.mean([ssim(r, x, data_range=255) for r, x in zip(ref, a, strict=True)])),
                "ssim_bf16": float(np.mean([ssim(r, x, data_range=255) for r, x in zip(ref, b, strict=True)])),
            }
            row["psnr_change_db"] = row["psnr_bf16"] - row["psnr_fp32"]
            rows[modality] = row
            print(f"{name} {modality}: {row}", flush=True)
        results["models"][name] = rows
        # speed: a larger field (users' slices are large; small ones measure the per-run planning instead)
        from peers import volume

        big, _ = volume(args.slices, 3)
        seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for precision in seconds:  # warm-up: kernels are built per shape on the first call
                super_resolve(big[:1], model, precision=precision, device=str(device))
            for _ in range(args.repeats):  # alternating, so that a busy moment hits both
                for precision in seconds:
                    start = time.perf_counter()
                    super_resolve(big, model, precision=precision, device=str(device))
                    seconds[precision].append(time.perf_counter() - start)
        mp = big.size * scale**2 / 1e6
        results["speed"] = {name: {"lr_shape": list(big.shape), "seconds": seconds,
                                   "fp32_mps": mp / median(seconds["fp32"]), "bf16_mps": mp / median(seconds["bf16"]),
                                   "speedup": median(seconds["fp32"]) / median(seconds["bf16"])}}  # fmt: skip
        print(f"{name} speed: {results['speed'][name]}", flush=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = [f"auto on {results['device']}: {results['auto'][0]} ({results['auto'][1]})", ""]
    for name, r in results.get("speed", {}).items():
        lines.append(f"{name}, LR {r['lr_shape']}: fp32 {r['fp32_mps']:.2f} MP/s, bf16 {r['bf16_mps']:.2f} MP/s, "
                     f"bf16 / fp32 {r['speedup']:.2f}x")  # fmt: skip
    lines += ["", "| model | data | max / mean diff | PSNR bf16 vs fp32 | PSNR fp32 / bf16 vs HR | change |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, rows in results["models"].items():
        for modality, r in rows.items():
            lines.append(
                f"| {name} | {modality} | {r['max_diff']:.1f} / {r['mean_diff']:.2f} | {r['psnr_bf16_vs_fp32']:.1f} dB | "
                f"{r['psnr_fp32']:.3f} / {r['psnr_bf16']:.3f} dB | {r['psnr_change_db']:+.4f} dB |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
