"""Fine-tuning strategies at equal wall time on pairs made from every shipped modality's held-out data.

For each data set, its held-out ``validation/`` slices (FlyEM: 24 of ``validation_sample``) are split
into *pair* slices and *evaluation* slices (never trained on):

- the pair is what a user acquires: an LR scan of the whole field (``em-like``: Gaussian beam of
  0.4 LR px on the HR grid, area integration, Poisson shot noise at 60 electrons, scan-line and read
  noise; a simulator the fitted model family does not share) and an HR field (the original slices,
  noisy) over the centre two thirds of it; ``prepare_pair`` locates the field (x3, no pixel sizes);
- each strategy fine-tunes the shipped default model (``em-x3``) for the same budget, ``--minutes``
  of this machine's time through ``TrainingConfig(budget=True)`` (the steps follow from the measured
  step time; the degradation fit of the fitted strategies is timed separately and reported);
- the evaluation slices get their own em-like scan (another seed); every model runs through the real
  tiled engine; scores against the original slices: PSNR, SSIM, mean FRC, FRC resolution (1/7).

    python benchmarks/finetune_modalities.py --minutes 3 --strategies real,real+fitted

A strategy ``NAME+consistency`` (e.g. ``real+fitted+consistency``) adds the degradation-consistency
term (weight 0.5) on LR patches without HR: the pair's LR outside the HR field and, for FlyEM, LR
scans of 16 other held-out slices (``UNPAIRED``). ``real+fitted=F`` (``real+fitted=F+consistency``) sets the share of patches with
simulated inputs (``--fitted-share``; default 0.5). ``--loss``, ``--lambdas``, ``--no-noisier`` and ``--input-noise`` change the loss of the EMSR fine-tunes
(the first three as ``emsr finetune``'s; the baselines keep the default loss). A strategy ``NAME@scratch`` trains EMSR (``lite``)
from random weights instead of the shipped model;
``cnn8`` and ``unet`` are the baselines of ``_baselines.py`` (a plain residual CNN and a CARE-style
U-Net, from random weights, trained with the same sampler, loss, optimiser and budget).

Writes ``benchmarks/results/finetune_modalities.json`` (after each run, so a long sweep can be read
while it goes) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import evaluate_zoo
from _baselines import BASELINES, predict_baseline, train_baseline
from _data import ROOT
from skimage.io import imread

from napari_emsr import load_model, super_resolve
from napari_emsr.cli._training import lambdas, numbers
from napari_emsr.config import TrainingConfig
from napari_emsr.device import cpu_name, resolve_precision
from napari_emsr.resample import bicubic_upsample
from napari_emsr.training import iter_finetune, prepare_pair

DATA = ROOT.parent / "shared" / "data"
#: folder, pair slices, evaluation slices, whether the HR field is the centre 2/3 (else the whole field)
MODALITIES = {
    "flyem-fibsem": ("flyem-medulla-fibsem/validation_sample", list(range(0, 200, 12))[:16], [4, 52, 100, 148, 196], True),
    "hela-sbfsem": ("hela-sbfsem-empiar10094/validation", [0, 1, 2], [3], True),
    "celegans-em": ("celegans-em-neubias/validation", [0, 1, 2], [3], False),
    "mussel-ssem": ("mussel-ssem-vemstitch/validation", [0, 1, 2, 3, 4, 5], [6, 7], True),
}  # fmt: skip
#: LR-only slices (no HR) for the degradation-consistency term: other held-out slices, where there are any
UNPAIRED = {"flyem-fibsem": list(range(6, 200, 12))[:16]}
SCALE = 3
#: evaluation slices are scored on their centre (HR px), as evaluate_zoo does
CROP = 504


def load(folder: str, picks: list[int]) -> np.ndarray:
    files = sorted((DATA / folder).glob("*.png"))
    stack = np.stack([imread(files[i]) for i in picks])
    h, w = (n // SCALE * SCALE for n in stack.shape[1:])
    return stack[:, :h, :w]


def acquire(hr: np.ndarray, seed: int) -> np.ndarray:
    """The em-like LR scan of uint8 ``hr`` (evaluate_zoo's, with beam 0.4 LR px)."""
    return evaluate_zoo.acquire(hr, SCALE, "em-like", seed)[0]


def score(reference: np.ndarray, images: np.ndarray) -> dict:
    """PSNR, SSIM, mean FRC and FRC resolution, as evaluate_zoo scores (pixel size unknown)."""
    return evaluate_zoo.score(reference, images, None)


def evaluate(model, lr: np.ndarray, hr: np.ndarray) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no pixel sizes here: the pixel-size warning would repeat
        sr = super_resolve(lr, model)
    return score(_centre(hr), _centre(sr))


def _centre(stack: np.ndarray) -> np.ndarray:
    h, w = stack.shape[1:]
    c = min(CROP, h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    return stack[:, y0 : y0 + c, x0 : x0 + c]


def hr_field(hr: np.ndarray, crop_field: bool) -> tuple[np.ndarray, int, int]:
    """The HR field of the pair (the centre two thirds on the LR grid, or all of ``hr``) and its corner (y0, x0)."""
    if not crop_field:
        return hr, 0, 0
    h, w = hr.shape[1:]
    fh, fw = (int(n * 2 / 3) // SCALE * SCALE for n in (h, w))
    y0, x0 = ((h - fh) // 2) // SCALE * SCALE, ((w - fw) // 2) // SCALE * SCALE
    return hr[:, y0 : y0 + fh, x0 : x0 + fw], y0, x0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="wall time of each fine-tune")
    parser.add_argument("--steps", type=int, default=None,
                        help="EMSR fine-tunes of this many steps instead of --minutes of this machine's time: "
                             "recipes compared at equal steps do not depend on how fast the machine is that day")
    parser.add_argument("--strategies", default="real,real+fitted")
    parser.add_argument("--modalities", default=",".join(MODALITIES))
    parser.add_argument("--base", default="em-x3", help="model to fine-tune (a zoo name or a file)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="training arithmetic; auto: bf16 on a CPU with AMX-BF16, else fp32 (bf16 is emulated there)")
    parser.add_argument("--schedule", default="step", choices=("step", "cosine"),
                        help="learning-rate schedule of the EMSR fine-tunes (TrainingConfig.schedule)")
    parser.add_argument("--learning-rate", type=float, default=TrainingConfig.learning_rate,
                        help="Adam's learning rate at the start (the fine-tune default: %(default)s)")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="decay of the moving average of the weights of the EMSR fine-tunes (0: none)")
    parser.add_argument("--loss", default=TrainingConfig.loss, choices=("l1", "l2"),
                        help="pixel loss of the EMSR fine-tunes (the default: %(default)s)")
    parser.add_argument("--lambdas", type=lambdas, default=TrainingConfig.weights,
                        help="lambda_1,lambda_2,lambda_3 of eq. 16 for the EMSR fine-tunes (emsr finetune --lambdas)")
    parser.add_argument("--no-noisier", action="store_true",
                        help="EMSR fine-tunes without the noisier copy y' (plain supervised; emsr finetune --no-noisier)")
    parser.add_argument("--input-noise", type=sigma_range, default=TrainingConfig.input_noise,
                        help="sigma range (0..255) of the augmentation noise on the inputs of the EMSR fine-tunes")
    parser.add_argument("--json", default="benchmarks/results/finetune_modalities.json")
    parser.add_argument("--resume", action="store_true",
                        help="keep the results already in --json and add the missing modalities and strategies")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every fine-tune and baseline (patch draws, augmentation, random weights): "
                             "repeat a table with other seeds to tell a lead from a tie; the pairs stay the same")
    parser.add_argument("--min-score", type=float, default=0.3,
                        help="locating the field: refuse matches below this NCC (the LR is far noisier than the HR)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from napari_emsr.model_io import resolve_model_path

    base_path = resolve_model_path(args.base)
    args.precision, why = resolve_precision(args.precision, torch.device("cpu"))
    print(f"{cpu_name()}, {args.threads} threads, training in {args.precision} ({why})", flush=True)
    results: dict = {"minutes": None if args.steps else args.minutes, "steps": args.steps, "threads": args.threads, "base": args.base, "machine": cpu_name(),
                     "precision": args.precision, "schedule": args.schedule, "ema": args.ema,
                     "learning_rate": args.learning_rate, "keep_by": TrainingConfig.keep_by, "seed": args.seed, **loss_recipe(args),
                     "modalities": {}}  # fmt: skip
    if args.resume and Path(args.json).exists():
        results = json.loads(Path(args.json).read_text())
        same = (results["minutes"], results.get("steps"), results["base"], results.get("machine"), results.get("precision"),
                results.get("schedule", "step"), results.get("ema", 0.0), results.get("learning_rate", TrainingConfig.learning_rate),
                results.get("keep_by", "ssim"),  # results before keep_by existed kept by SSIM
                results.get("seed", 0),  # results before --seed existed used seed 0
                {k: results.get(k, v) for k, v in loss_recipe(parser.parse_args([])).items()})  # older files: the defaults
        if same != (None if args.steps else args.minutes, args.steps, args.base, cpu_name(), args.precision, args.schedule,
                    args.ema, args.learning_rate, TrainingConfig.keep_by, args.seed, loss_recipe(args)):
            raise SystemExit(f"{args.json} holds another budget, base model, machine, precision, recipe or seed ({same}): "
                             "runs at equal wall time compare only on one machine; drop --resume or use another --json")
    for name in args.modalities.split(","):
        folder, pair_slices, eval_slices, crop_field = MODALITIES[name]
        hr = load(folder, pair_slices)
        lr = acquire(hr, seed=1)
        field, y0, x0 = hr_field(hr, crop_field)
        lr_part, hr_part, report = prepare_pair(lr, field, scale=SCALE, min_score=args.min_score)
        expected = (0, y0 // SCALE, x0 // SCALE)
        if tuple(report.offset) != expected:
            raise SystemExit(f"{name}: the field was located at {report.offset}, but it lies at {expected}")
        hr_eval = load(folder, eval_slices)
        lr_eval = acquire(hr_eval, seed=7)
        bicubic = np.clip(bicubic_upsample(lr_eval / 255.0, SCALE), 0, 1) * 255
        previous = results["modalities"].get(name, {}).get("strategies", {})
        entry = {"pair": {"lr": list(lr.shape), "hr_field": list(field.shape), "offset": list(report.offset),
                          "score": report.score}, "eval_slices": eval_slices,
                 "bicubic": score(_centre(hr_eval), _centre(bicubic)),
                 "zero-shot": evaluate(load_model(base_path), lr_eval, hr_eval), "strategies": dict(previous)}  # fmt: skip
        results["modalities"][name] = entry
        print(f"{name}: pair {report.summary().splitlines()[0]}; bicubic {entry['bicubic']}; "
              f"zero-shot {entry['zero-shot']}", flush=True)  # fmt: skip
        for variant in args.strategies.split(","):
            if variant in entry["strategies"]:
                print(f"  {variant}: kept from {args.json}")
                continue
            if variant in BASELINES:
                entry["strategies"][variant] = run_baseline(variant, hr_part, lr_part, lr_eval, hr_eval, args)
                print(f"  {variant}: {entry['strategies'][variant]}", flush=True)
                Path(args.json).write_text(json.dumps(results, indent=2))
                continue
            strategy, _, start = variant.partition("@")
            base = None if start == "scratch" else base_path
            consistency = 0.0
            if strategy.endswith("+consistency"):
                strategy, consistency = strategy[: -len("+consistency")], 0.5
            strategy, _, share = strategy.partition("=")  # real+fitted=0.8[+consistency]
            fitted_share = float(share) if share else TrainingConfig.fitted_share
            timing = dict(steps=args.steps) if args.steps else dict(steps=2000, minutes=args.minutes, budget=True)
            config = TrainingConfig(strategy=strategy, **timing, patch=48,
                                    val_every=250, seed=args.seed, precision=args.precision,
                                    lambda_consistency=consistency, schedule=args.schedule, ema=args.ema,
                                    fitted_share=fitted_share, learning_rate=args.learning_rate, loss=args.loss,
                                    weights=args.lambdas, noisier_branch=not args.no_noisier,
                                    input_noise=args.input_noise)  # fmt: skip
            z0, y, x = report.offset
            field_box = (z0, z0 + lr_part.shape[0], y, y + lr_part.shape[1], x, x + lr_part.shape[2])
            unpaired = [(lr, field_box)]  # the pair's LR outside the HR field (a patch that cannot fit outside overlaps)
            if name in UNPAIRED:  # and LR slices with no HR at all
                unpaired.append((acquire(load(folder, UNPAIRED[name]), seed=3), None))
            fitted, started = None, time.perf_counter()
            fit_s, total_steps, history = None, None, []
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "m.safetensors"
                for event in iter_finetune([hr_part], [lr_part], out=out, config=config, base=base, preset="lite",
                                           scale=SCALE, val_slices="last:1",
                                           unpaired_lr=unpaired if consistency else ()):  # fmt: skip
                    if event.kind == "degradation":
                        fitted, fit_s = event.payload, time.perf_counter() - started
                    elif event.kind == "validation":  # the held-out slice of the pair, as the trainer picks
                        history.append({"step": event.payload.step, "ssim": event.payload.scores["ssim"]})
                    elif event.kind == "done":
                        total_steps = event.payload.steps
                model = load_model(out)
            best_step = model.metadata.provenance.get("steps")
            run = {**evaluate(model, lr_eval, hr_eval), "steps": total_steps, "best_step": best_step,
                   "wall_s": time.perf_counter() - started, "validation": history}  # fmt: skip
            if fitted is not None:
                g = fitted.goodness
                run["fit_s"] = fit_s
                run["fitted_share"] = config.fitted_share if strategy == "real+fitted" else 1.0
                run["fit"] = {"probe_sigma_major": fitted.probe_sigma_major.value, "dose": fitted.dose.value,
                              "gamma": fitted.gamma.value, "inverted": fitted.inverted,
                              "noise_max_relative_error": g.noise_max_relative_error if g else None,
                              "spectrum_max_log10_error": g.spectrum_max_log10_error if g else None}  # fmt: skip
            entry["strategies"][variant] = run
            print(f"  {variant}: {run}", flush=True)
            Path(args.json).write_text(json.dumps(results, indent=2))
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(markdown(results))


_SIGMA_PAIR = numbers(float, "0,5", "two sigmas LOW,HIGH", count=2)


def sigma_range(text: str) -> tuple[float, float]:
    """``--input-noise``: two sigmas ``LOW,HIGH`` (0..255 scale), 0 <= LOW <= HIGH."""
    low, high = _SIGMA_PAIR(text)
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, got {text!r}")
    return low, high


def loss_recipe(args) -> dict:
    """The loss options of the EMSR fine-tunes, as the results record them."""
    return {"loss": args.loss, "lambdas": list(args.lambdas), "noisier": not args.no_noisier,
            "input_noise": list(args.input_noise)}


def run_baseline(name: str, hr_part, lr_part, lr_eval, hr_eval, args) -> dict:
    config = TrainingConfig(strategy="real", minutes=args.minutes, patch=48, seed=args.seed, precision=args.precision)
    started = time.perf_counter()
    model, steps = train_baseline(name, hr_part, lr_part, SCALE, config)
    sr = predict_baseline(model, lr_eval)
    params = sum(p.numel() for p in model.parameters())
    return {**score(_centre(hr_eval), _centre(sr)), "steps": steps, "parameters": params,
            "wall_s": time.perf_counter() - started}  # fmt: skip


def markdown(results: dict) -> str:
    lines = ["| data | method | PSNR | SSIM | mean FRC | FRC res. (px) | steps |", "|---|---|---|---|---|---|---|"]
    for name, entry in results["modalities"].items():
        rows = [("bicubic", entry["bicubic"]), (f"{results['base']} zero-shot", entry["zero-shot"])]
        rows += [(f"{k} (from scratch, same recipe)" if k in BASELINES else f"fine-tuned, {k}", v)
                 for k, v in entry["strategies"].items()]  # fmt: skip
        for method, s in rows:
            lines.append(f"| {name} | {method} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['frc_mean']:.3f} | "
                         f"{s['frc_resolution_px']:.2f} | {s.get('steps', '')} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
