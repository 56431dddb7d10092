"""Does ``torch.compile`` pay for prediction? Compile time against the forward pass it saves.

For each window size and precision: the shipped default model (prepared as the engine prepares it:
eval, channels_last, inference mode, autocast for bf16) runs eager and compiled (inductor,
``dynamic=False``: the engine's tiles have one shape per run) on the same random window,
alternating, median of ``--repeats`` after a warm-up each. Reported: the compile time (first call
of the compiled model, less one eager pass), the steady-state ratio eager / compiled, the largest
output difference, and the break-even: how many output megapixels a run must produce before
compiling has paid for itself (none when compiled is not faster).

    python compile.py --json results/compile.json                    # CPU, fp32 (+ bf16 with AMX)
    python compile.py --device cuda --windows 552,1064 --json results/gpu/compile_gpu.json

Run it on a quiet machine: each compile takes about a minute of one core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from napari_emsr import load_model
from napari_emsr.device import cpu_has_amx_bf16, cpu_name, select_device
from napari_emsr.predict.engine import prepare_model
from napari_emsr.zoo import default_for_scale


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, x: torch.Tensor, device: torch.device) -> tuple[float, torch.Tensor]:
    _sync(device)
    start = time.perf_counter()
    y = fn(x)
    _sync(device)
    return time.perf_counter() - start, y


def measure(model: torch.nn.Module, window: int, precision: str, device: torch.device, repeats: int) -> dict:
    """Eager against compiled on one ``window`` x ``window`` input; see the module docstring."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, window, window, device=device).contiguous(memory_format=torch.channels_last)
    scale = model.config.scale
    cast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    torch._dynamo.reset()  # every case compiles from nothing
    compiled = torch.compile(model, dynamic=False)
    with torch.inference_mode(), cast:
        eager_first, reference = _timed(model, x, device)
        first, output = _timed(compiled, x, device)
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(repeats):
            for name, fn in (("eager", model), ("compiled", compiled)):
                times[name].append(_timed(fn, x, device)[0])
    eager, fast = statistics.median(times["eager"]), statistics.median(times["compiled"])
    compile_s = max(0.0, first - fast)
    out_mp = (scale * window) ** 2 / 1e6
    saved_per_mp = (eager - fast) / out_mp  # seconds saved per output megapixel
    return {
        "window": window, "precision": precision, "eager_s": eager, "compiled_s": fast,
        "speedup": eager / fast, "compile_s": compile_s, "eager_first_s": eager_first,
        "max_abs_diff": float((output.float() - reference.float()).abs().max()),
        "break_even_output_mp": compile_s / saved_per_mp if saved_per_mp > 0 else None,
        "eager_output_mps": out_mp / eager, "compiled_output_mps": out_mp / fast,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--windows", default="96,320", help="input window sizes (the default tile 256 + halos: 320)")
    parser.add_argument("--precisions", default="auto",
                        help="fp32,bf16 or auto: fp32, and bf16 where it is native (AMX-BF16 CPU, bf16 GPU)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="results/compile.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    if args.precisions == "auto":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_amx_bf16()
        precisions = ["fp32", "bf16"] if native else ["fp32"]
    else:
        precisions = args.precisions.split(",")
    shipped = default_for_scale(3)
    assert shipped is not None, "no shipped x3 model"
    model = prepare_model(load_model(shipped.path), device)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    results = {"machine": machine, "device": str(device), "threads": args.threads, "torch": torch.__version__,
               "model": shipped.name, "repeats": args.repeats, "cases": []}  # fmt: skip
    print(f"{machine}, {args.threads} threads, torch {torch.__version__}, {shipped.name}", flush=True)
    for precision in precisions:
        for window in (int(w) for w in args.windows.split(",")):
            case = measure(model, window, precision, device, args.repeats)
            results["cases"].append(case)
            even = case["break_even_output_mp"]
            print(f"{precision} window {window}: eager {case['eager_s']:.3f} s, compiled {case['compiled_s']:.3f} s "
                  f"({case['speedup']:.2f}x), compile {case['compile_s']:.0f} s, max diff {case['max_abs_diff']:.1e}, "
                  f"break-even {'never' if even is None else f'{even:.0f} output MP'}", flush=True)  # fmt: skip
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
