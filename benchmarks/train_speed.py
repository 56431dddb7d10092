"""Training speed (steps per second) of the paper and lite presets on this machine.

One step = batch 2 of 48x48 LR patches plus their noisier copies (4 images through the network),
loss, backward, Adam update; the paper's setting. Reports the median over the timed steps.

    python benchmarks/train_speed.py [--steps 30] [--presets paper,lite] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from napari_emsr.config import TrainingConfig
from napari_emsr.training import iter_finetune

from _data import load_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--presets", default="paper,lite")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    hr = load_stack("training_sample1", slice(0, 40))
    results = {}
    import tempfile

    for preset in args.presets.split(","):
        config = TrainingConfig(strategy="synthetic-ii", steps=args.steps, val_every=10**6, device=args.device)
        times, last = [], None
        with tempfile.TemporaryDirectory() as tmp:
            for event in iter_finetune([hr], out=f"{tmp}/m.safetensors", config=config, preset=preset):
                if event.kind == "step":
                    now = time.perf_counter()
                    if last is not None:
                        times.append(now - last)
                    last = now
        warm = times[3:]  # the first steps include one-off allocation
        median = float(np.median(warm))
        results[preset] = {"median_step_s": median, "steps_per_s": 1 / median, "timed_steps": len(warm)}
        print(f"{preset:>6}: {1 / median:6.2f} steps/s (median step {median * 1000:.0f} ms over {len(warm)} steps)")
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "device": args.device}
    if "paper" in results and "lite" in results:
        print(f"lite / paper speed ratio: {results['lite']['steps_per_s'] / results['paper']['steps_per_s']:.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
