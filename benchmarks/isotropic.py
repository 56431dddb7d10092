"""Isotropic reconstruction on simulated anisotropic FIB-SEM, against linear and cubic interpolation in z.

FlyEM's FIB-SEM is isotropic (10 nm). An anisotropic acquisition is simulated by sampling z every K
slices through a box section profile of one z step, with the noise of one slice restored
(:func:`napari_emsr.isotropic.sample_sections`).

- ``train``: the isotropic network is trained, as a user would train it on their own anisotropic
  volume, on the xy slices of the simulated acquisitions of the two *training* samples
  (training_sample1 at K = 3, training_sample2 at K = 5, stacked; K drawn in 3..5 per patch),
  starting from em-x3's body; fixed steps, so the result does not depend on the machine's speed.
- ``evaluate``: the held-out validation_sample (a centred crop) is sampled at K = 3 and K = 5,
  reconstructed, and its xz and yz planes compared with the original's: PSNR, SSIM, and the
  Fourier correlation along z with the original (mean over frequencies, and the finest z period
  at which it stays above 0.5, in nm), against linear and cubic interpolation in z. Rows within
  one z step of the top and bottom are left out (no method sees past the volume there).

    cd benchmarks
    python isotropic.py train --steps 2400 --precision bf16 --out results/isotropic-flyem.safetensors [--resume]
    python isotropic.py train --factor 3 --steps 1500 --precision bf16 --out results/isotropic-flyem-k3.safetensors
    python isotropic.py evaluate --model results/isotropic-flyem.safetensors \\
        --model-for 3=results/isotropic-flyem-k3.safetensors --crop 192 --json results/isotropic.json \\
        --figure "../docs/images/isotropic-xz-K{k}.png"

``--factor K`` trains for one K (both samples at K); ``--model-for K=PATH`` evaluates K with its own model.
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
from _data import load_stack

from napari_emsr.config import TrainingConfig
from napari_emsr.isotropic import cubic_resample, isotropic, iter_train_isotropic, linear_resample, sample_sections
from napari_emsr.isotropic.sampling import output_positions
from napari_emsr.metrics import psnr, ssim

PIXEL_NM = 10.0
FACTORS = (3.0, 5.0)


def _u8(volume: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(volume), 0, 255).astype(np.uint8)


def train(args: argparse.Namespace) -> None:
    factors = (3.0, 5.0) if args.factor is None else (args.factor, args.factor)
    parts = [_u8(sample_sections(load_stack(name).astype(np.float32), k, seed=i))
             for i, (name, k) in enumerate(zip(("training_sample1", "training_sample2"), factors, strict=True))]
    stack = np.concatenate(parts)
    print(f"training on {stack.shape[0]} xy slices of {stack.shape[1:]} (simulated K={factors[0]:g} and "
          f"K={factors[1]:g} acquisitions)")
    config = TrainingConfig(steps=args.steps, batch=4, patch=64, val_every=300, halve_every=max(1, args.steps * 2 // 3),
                            z_factor_max=None if args.factor else 5.0, strategy="axial", z_factor=factors[0],
                            precision=args.precision)
    started = time.perf_counter()
    best = None
    for event in iter_train_isotropic(
        stack, args.out, z_factor=factors[0], config=config, resume=args.resume, overwrite=not args.resume,
        pixel_size=(PIXEL_NM * 4, PIXEL_NM, PIXEL_NM),
        provenance={"data": f"FlyEM medulla FIB-SEM training_sample1 (K={factors[0]:g}) + training_sample2 "
                            f"(K={factors[1]:g}), anisotropic acquisitions simulated by benchmarks/isotropic.py",
                    "command": f"python benchmarks/isotropic.py train --steps {args.steps}"
                               + (f" --factor {args.factor:g}" if args.factor else "")},
    ):  # fmt: skip
        if event.kind in ("info", "validation") or (event.kind == "step" and event.done % 100 == 0):
            print(f"[{event.elapsed:6.0f} s] {event.message}", flush=True)
        if event.kind == "done":
            best = event.payload.best
    print(f"best validation {best} after {time.perf_counter() - started:.0f} s")


def _along_z(result: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Fourier correlation along z of xz and yz lines of ``result`` with ``truth`` (z, y, x)."""
    fa = np.fft.rfft(result - result.mean(axis=0), axis=0)
    fb = np.fft.rfft(truth - truth.mean(axis=0), axis=0)
    num = (fa * fb.conj()).real.sum(axis=(1, 2))
    den = np.sqrt((np.abs(fa) ** 2).sum(axis=(1, 2)) * (np.abs(fb) ** 2).sum(axis=(1, 2)))
    corr = (num / np.maximum(den, 1e-12))[1:]
    freq = np.fft.rfftfreq(result.shape[0])[1:]  # cycles per output row
    above = np.nonzero(corr < 0.5)[0]
    cutoff = freq[above[0] - 1] if len(above) and above[0] > 0 else (freq[0] if len(above) else freq[-1])
    return {"fourier_corr_z_mean": float(corr.mean()), "z_resolution_nm": float(PIXEL_NM / cutoff)}


def _scores(result: np.ndarray, truth: np.ndarray, edge: int) -> dict[str, float]:
    r, t = result[edge:-edge].astype(np.float32), truth[edge:-edge].astype(np.float32)
    xz = [(t[:, y], r[:, y]) for y in range(0, t.shape[1], 4)]
    yz = [(t[:, :, x], r[:, :, x]) for x in range(0, t.shape[2], 4)]
    out = {}
    for name, planes in (("xz", xz), ("yz", yz)):
        out[f"psnr_{name}"] = float(np.mean([psnr(a, b, data_range=255) for a, b in planes]))
        out[f"ssim_{name}"] = float(np.mean([ssim(a, b, data_range=255) for a, b in planes]))
    return {**out, **_along_z(r, t)}


def _figure(path: Path, sections, cubic, result, truth, k: float) -> None:
    """One xz plane (middle y), 96 rows: the sections as acquired (rows repeated), cubic, EMSR, the original."""
    from skimage.io import imsave

    y, rows = truth.shape[1] // 2, min(96, truth.shape[0])
    acquired = sections[np.minimum(np.rint(np.arange(rows) / k).astype(int), sections.shape[0] - 1), y]
    panels = [acquired, cubic[:rows, y], result[:rows, y], truth[:rows, y]]
    gap = np.full((rows, 4), 255, np.uint8)
    strip = np.concatenate([p for panel in panels for p in (_u8(panel), gap)][:-1], axis=1)
    big = np.kron(strip, np.ones((2, 2), np.uint8))  # 2x, nearest: the pixels as they are
    imsave(path, big, check_contrast=False)
    print(f"wrote {path}: xz at y={y}: as acquired (K={k:g}) | cubic | EMSR isotropic | original")


def evaluate(args: argparse.Namespace) -> None:
    volume = load_stack("validation_sample").astype(np.float32)
    c0 = (volume.shape[1] - args.crop) // 2
    volume = volume[:, c0 : c0 + args.crop, c0 : c0 + args.crop]
    rows: dict[str, dict] = {}
    timing = {}
    for k in FACTORS:
        sections = _u8(sample_sections(volume, k, seed=100 + int(k)))
        depth = int(np.floor((sections.shape[0] - 1) * k + 1e-6)) + 1
        truth = volume[:depth]
        positions = output_positions(range(depth), k)
        planes = sections.astype(np.float32).transpose(1, 0, 2)
        baselines = {
            "linear": linear_resample(planes, positions).transpose(1, 0, 2),
            "cubic": np.clip(cubic_resample(planes, positions), 0, 255).transpose(1, 0, 2),
        }
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = dict(args.model_for).get(k, args.model)
            result = isotropic(sections, model, z_factor=k, pixel_size=(PIXEL_NM * k, PIXEL_NM, PIXEL_NM),
                               precision=args.precision)
        seconds = time.perf_counter() - started
        timing[f"K={k:g}"] = {"model": str(model), "seconds": round(seconds, 1),
                              "output_voxels": int(np.prod(result.shape)),
                              "mvoxels_per_s": round(np.prod(result.shape) / seconds / 1e6, 3)}
        edge = int(np.ceil(k))
        for name, value in (*baselines.items(), ("emsr isotropic (xz+yz)", result)):
            rows[f"K={k:g} {name}"] = _scores(value, truth, edge)
        if args.figure:
            _figure(Path(args.figure.format(k=f"{k:g}")), sections, baselines["cubic"], result, truth, k)
        print(f"K={k:g}: {sections.shape} -> {result.shape} in {seconds:.0f} s")
    print("| K, method | PSNR xz | PSNR yz | SSIM xz | SSIM yz | Fourier corr. z | z resolution (nm) |")
    for name, r in rows.items():
        print(f"| {name} | {r['psnr_xz']:.2f} | {r['psnr_yz']:.2f} | {r['ssim_xz']:.4f} | {r['ssim_yz']:.4f} | "
              f"{r['fourier_corr_z_mean']:.3f} | {r['z_resolution_nm']:.1f} |")
    Path(args.json).write_text(json.dumps({
        "data": f"FlyEM validation_sample, centred {args.crop}x{args.crop} crop, all 200 slices (held out)",
        "model": str(args.model), "precision": args.precision, "timing": timing, "rows": rows,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
    }, indent=2))  # fmt: skip


def _model_for(text: str) -> tuple[float, str]:
    k, _, path = text.partition("=")
    return float(k), path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=2400)
    t.add_argument("--out", default="benchmarks/results/isotropic-flyem.safetensors")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--precision", default="fp32")
    t.add_argument("--factor", type=float, help="train for this K only (both samples at K); default: K in 3..5")
    e = sub.add_parser("evaluate")
    e.add_argument("--model", default="benchmarks/results/isotropic-flyem.safetensors")
    e.add_argument("--model-for", type=_model_for, action="append", default=[], metavar="K=MODEL",
                   help="the model for one K (default: --model for all)")
    e.add_argument("--crop", type=int, default=192)
    e.add_argument("--precision", default="auto")
    e.add_argument("--json", default="benchmarks/results/isotropic.json")
    e.add_argument("--figure", default="docs/images/isotropic-xz-K{k}.png",
                   help="where the xz figures go ({k}: the z factor); empty: none")
    args = parser.parse_args()
    train(args) if args.command == "train" else evaluate(args)


if __name__ == "__main__":
    main()
