"""Held-out quality of the model zoo on every modality, against bicubic, zero-shot.

For each data set's held-out ``validation/`` slices (never used in training or model selection),
the reference is the slice as acquired (noisy) and the LR input is made by an EM acquisition that is
NOT the training one:

- ``em-like`` (the project's benchmark since the first default model; ``napari_emsr.training.degrade
  .em_like``): Gaussian beam blur of 0.4 LR px, area integration over s x s pixels, Poisson shot noise
  at 60 electrons per pixel at full brightness, scan-line noise 3/255, read noise 6/255. At x3 this is
  exactly the benchmark the first default model was measured with. Its effects lie inside the ranges
  synthetic-em draws from (a fixed point of that family).
- ``em-lag``: effects synthetic-em never simulates: a beam with a wide skirt (Gaussian core 0.35 LR px
  plus 20 % of the current in a Gaussian of 1.5 LR px), a detector whose response lags along the scan
  line (one-sided exponential, 0.6 LR px), contrast-inverted shot noise at 30 electrons, read noise
  4/255, no line noise.

Every model runs through the real tiled engine (``super_resolve``, default tile and halo); bicubic
up-sampling of the same LR is the baseline. Scores: PSNR, SSIM, mean FRC, and the FRC resolution
(1/7 threshold, Hann window, curves pooled over the slices) in nm where the pixel size is known
(FlyEM: 10 nm), else in HR pixels.

``--sweep`` also measures each model's range of valid input pixel sizes on FlyEM (10 nm, known):
3 of the 10 HR slices are resampled by factors 0.6-2.8 (finer or coarser pixels; at most 420 px) before the em-like
acquisition; the valid range is the contiguous span of input pixel sizes around the nominal one
where the model beats bicubic in both SSIM and mean FRC.

    python benchmarks/evaluate_zoo.py MODEL[=LABEL] ... [--acquisition em-like em-lag] [--sweep [LABEL ...]]
        [--self-ensemble] [--json benchmarks/results/zoo_eval.json] [--markdown]

``--self-ensemble`` also scores each model with its 8 flips / rotations averaged (``LABEL+se``), the
engine's ``self_ensemble=True``: what the extra 8x of compute buys on held-out data.

MODEL is a file or a zoo name. Data credits: FlyEM project, Janelia Research Campus (HHMI),
neuroproof_examples, CC BY 3.0; HeLa SBF-SEM from EMPIAR-10094 via MitoEM, CC0 1.0; C. elegans EM
from NEUBIAS training-resources (EMPIAR-10982), CC BY 4.0; mussel vEMstitch tiles, CC0 1.0. All
cropped and degraded here.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.io import imread

from napari_emsr import load_model, super_resolve
from napari_emsr.metrics import frc_curve, frc_mean, frc_pool, frc_resolution, psnr, ssim
from napari_emsr.model_io import resolve_model_path
from napari_emsr.resample import bicubic_upsample
from napari_emsr.training.acquisition import pixel_integrate, probe_blur, read_noise, shot_noise, zoom
from napari_emsr.training.degrade import em_like

from _data import DATA

ROOT = DATA.parent
#: data set -> (held-out folder, HR pixel size in nm or None, slices to use)
MODALITIES = {
    "flyem-fibsem": ("flyem-medulla-fibsem/validation_sample", 10.0, np.linspace(0, 199, 10).round().astype(int)),
    "hela-sbfsem": ("hela-sbfsem-empiar10094/validation", None, None),
    "celegans-em": ("celegans-em-neubias/validation", None, None),
    "mussel-ssem": ("mussel-ssem-vemstitch/validation", None, None),
}
#: the centre crop of each slice (HR pixels; keeps the run short on a CPU)
CROP = 504


def load(name: str) -> tuple[np.ndarray, float | None]:
    folder, pixel, picks = MODALITIES[name]
    files = sorted((ROOT / folder).glob("*.png"))
    files = [files[i] for i in picks] if picks is not None else files
    stack = np.stack([imread(f) for f in files])
    h, w = stack.shape[1:]
    c = min(CROP, h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    return stack[:, y0 : y0 + c, x0 : x0 + c], pixel


def _skirt_lag(x: torch.Tensor, s: int) -> torch.Tensor:
    core = probe_blur(x, 0.35 * s, 0.35 * s, 0.0)
    skirt = probe_blur(x, 1.5 * s, 1.5 * s, 0.0)
    x = 0.8 * core + 0.2 * skirt
    tau = 0.6 * s  # HR px: a one-sided exponential along x (the scan direction)
    taps = torch.arange(0, int(5 * tau) + 1, dtype=x.dtype)
    k = torch.exp(-taps / tau)
    k = (k / k.sum()).flip(0).view(1, 1, 1, -1)
    x = F.conv2d(F.pad(x, (k.shape[-1] - 1, 0, 0, 0), mode="replicate"), k)
    return x


def acquire(hr: np.ndarray, s: int, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """LR (uint8) of uint8 HR (cropped to multiples of s) by the named held-out acquisition."""
    h, w = (n // s * s for n in hr.shape[1:])
    hr = hr[:, :h, :w]
    x = torch.from_numpy(hr / 255.0).float()[:, None]
    g = torch.Generator().manual_seed(seed)
    if kind == "em-like":
        lr = em_like(x, s, g, blur=0.4 * s)
    elif kind == "em-lag":
        lr = pixel_integrate(_skirt_lag(x, s), s, 1.0, 1.0)
        lr = read_noise(shot_noise(lr, 30.0, g, inverted=1.0), 4 / 255, g)
    else:
        raise ValueError(kind)
    return (np.clip(lr[:, 0].numpy(), 0, 1) * 255).round().astype(np.uint8), hr


def score(reference: np.ndarray, images: np.ndarray, pixel: float | None) -> dict:
    ref = reference.astype(np.float32)
    img = np.asarray(images, dtype=np.float32)
    rows = np.array([(psnr(r, p, data_range=255), ssim(r, p, data_range=255), frc_mean(r, p)) for r, p in zip(ref, img)])
    pooled = frc_pool([frc_curve(r, p, window="hann", pixel_size=pixel) for r, p in zip(ref, img)])
    res = frc_resolution(pooled, threshold="1/7")
    return {"psnr": float(rows[:, 0].mean()), "ssim": float(rows[:, 1].mean()), "frc_mean": float(rows[:, 2].mean()),
            "ssim_std": float(rows[:, 1].std()), "frc_mean_std": float(rows[:, 2].std()),
            "frc_resolution_px": res.resolution_px, "frc_resolution_nm": res.resolution_nm}  # fmt: skip


def predict(lr: np.ndarray, model, pixel_lr: float | None, self_ensemble: bool = False) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pixel-size warnings: the sweep leaves the range on purpose
        return super_resolve(lr, model, pixel_size=pixel_lr, self_ensemble=self_ensemble)


def sweep(models: dict, seed: int) -> dict:
    """Quality vs input pixel size on FlyEM (10 nm known): zoomed references, em-like LR."""
    hr0, pixel = load("flyem-fibsem")
    hr0 = hr0[:: max(1, len(hr0) // 3)][:3]
    out = {}
    for label, model in models.items():
        s = model.config.scale
        rows = []
        for factor in (0.6, 0.75, 0.9, 1.0, 1.2, 1.45, 1.75, 2.2, 2.8):
            size = min(int(CROP / factor), 420) // s * s  # zoom's span (factor x size) fits the crop
            ref = torch.from_numpy(hr0 / 255.0).float()[:, None]
            ref = zoom(ref, factor, size) if factor != 1 else ref[..., :size, :size]
            ref_u8 = (ref[:, 0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            lr, ref_u8 = acquire(ref_u8, s, "em-like", seed)
            pixel_lr = pixel * factor * s
            m = score(ref_u8, predict(lr, model, pixel_lr), None)
            b = score(ref_u8, np.clip(bicubic_upsample(lr, s), 0, 255).round(), None)
            rows.append({"input_pixel_nm": pixel_lr, "zoom": factor, "model": m, "bicubic": b,
                         "beats_bicubic": bool(m["ssim"] > b["ssim"] and m["frc_mean"] > b["frc_mean"])})
            print(f"  sweep {label} {pixel_lr:6.1f} nm: SSIM {m['ssim']:.3f} vs {b['ssim']:.3f}, "
                  f"FRC {m['frc_mean']:.3f} vs {b['frc_mean']:.3f}", flush=True)
        nominal = min(range(len(rows)), key=lambda i: abs(rows[i]["zoom"] - 1))
        lo = hi = nominal
        if rows[nominal]["beats_bicubic"]:
            while lo > 0 and rows[lo - 1]["beats_bicubic"]:
                lo -= 1
            while hi < len(rows) - 1 and rows[hi + 1]["beats_bicubic"]:
                hi += 1
            valid = [rows[lo]["input_pixel_nm"], rows[hi]["input_pixel_nm"]]
        else:
            valid = None
        out[label] = {"rows": rows, "valid_input_pixel_size_nm": valid,
                      "note": "range end points are the outermost tested sizes (factors 0.6-2.8 of the nominal) that still beat bicubic; a range reaching them is bounded by the test, not by the model"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model files or zoo names, optionally NAME=LABEL")
    parser.add_argument("--acquisition", nargs="+", default=["em-like", "em-lag"], choices=["em-like", "em-lag"])
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=list(MODALITIES))
    parser.add_argument("--sweep", nargs="*", metavar="LABEL",
                        help="also measure the valid input pixel-size range (of these models; none named: all)")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="also score every model with the 8 flips / rotations averaged (label LABEL+se; 8x slower)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    models = {}
    for spec in args.models:
        path, _, label = spec.partition("=")
        models[label or Path(path).stem] = load_model(resolve_model_path(path))
    results = {"acquisitions": {}, "crop": CROP, "seed": args.seed, "torch": torch.__version__,
               "models": {k: {"scale": m.config.scale, "name": m.metadata.name} for k, m in models.items()}}
    started = time.perf_counter()
    for kind in args.acquisition:
        table = results["acquisitions"][kind] = {}
        for name in args.modalities:
            hr_all, pixel = load(name)
            table[name] = {"slices": int(hr_all.shape[0]), "hr_pixel_nm": pixel}
            for s in sorted({m.config.scale for m in models.values()}):
                lr, hr = acquire(hr_all, s, kind, args.seed)
                row = table[name][f"x{s}"] = {"bicubic": score(hr, np.clip(bicubic_upsample(lr, s), 0, 255).round(), pixel)}
                for label, model in models.items():
                    if model.config.scale == s:
                        pixel_lr = None if pixel is None else pixel * s
                        for key, ensemble in [(label, False)] + [(f"{label}+se", True)] * args.self_ensemble:
                            t = time.perf_counter()
                            row[key] = score(hr, predict(lr, model, pixel_lr, self_ensemble=ensemble), pixel)
                            row[key]["seconds"] = time.perf_counter() - t
                for label, sc in row.items():
                    print(f"{kind:8s} {name:13s} x{s} {label:22s} PSNR {sc['psnr']:6.2f} SSIM {sc['ssim']:.3f} "
                          f"FRC {sc['frc_mean']:.3f} res {sc['frc_resolution_px'] or float('nan'):.2f} px", flush=True)
    if args.sweep is not None:
        chosen = {k: m for k, m in models.items() if not args.sweep or k in args.sweep}
        results["pixel_size_sweep"] = sweep(chosen, args.seed)
    results["seconds"] = time.perf_counter() - started
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.markdown:
        print(markdown(results))


def markdown(results: dict) -> str:
    lines = []
    for kind, table in results["acquisitions"].items():
        lines += [f"\n**{kind}** (PSNR dB / SSIM / mean FRC / FRC resolution)\n",
                  "| data | scale | method | PSNR | SSIM | mean FRC | FRC resolution |", "|---|---|---|---|---|---|---|"]
        for name, by_scale in table.items():
            for scale, row in by_scale.items():
                if not scale.startswith("x"):
                    continue
                for label, sc in row.items():
                    res = f"{sc['frc_resolution_nm']:.1f} nm" if sc.get("frc_resolution_nm") else (
                        f"{sc['frc_resolution_px']:.2f} px" if sc.get("frc_resolution_px") else "< 2 px")
                    lines.append(f"| {name} | {scale} | {label} | {sc['psnr']:.2f} | {sc['ssim']:.3f} | "
                                 f"{sc['frc_mean']:.3f} | {res} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
