"""Side by side, one run, same real volume and threads: our engine against what a user would otherwise run.

(a) **The published EMSR inference scheme** with our network: 341-px LR patches at stride 170, each
    predicted whole, overlapping outputs averaged by a count map (as in the paper's code), against our
    tiled engine (default settings and ``--tile auto``): seconds, output MP/s, and how far the two
    outputs differ (max / mean grey levels, PSNR of one against the other).
(b) **PSSR2** (``pssr`` from PyPI, its default ResUNet, random weights: speed does not depend on them),
    in its own virtual environment that this script creates (``benchmarks/.peers-venv``; the CPU torch
    wheel of this machine, then ``pssr`` and its dependencies), predicting the volume the way its
    ``predict_images`` does: non-overlapping LR tiles (128 px, PSSR2's default ``hr_res`` 512 / scale 4),
    each through the network, stitched. Output MP/s and peak RSS of that process, against ours (our
    engine also runs in its own process for a fair peak RSS).
(c) **bicubic** (scikit-image ``rescale``, order 3) as the floor.

The volume: --slices slices, each a --mosaic x --mosaic mosaic of real FlyEM validation slices
(519 x 519 each, held out; 3 x 3: 1557 x 1557 HR, as users' fields are large), degraded by
evaluate_zoo's EM-like acquisition (x3: 519 x 519 LR). Model: the shipped em-x3 (lite preset).

    python benchmarks/peers.py [--slices 4] [--mosaic 3] [--threads 2] [--no-pssr] [--json results/peers.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers-venv"
#: the published scheme's patch and stride (LR pixels)
PATCH, STRIDE = 341, 170


def published_scheme(model, lr: np.ndarray, precision: str = "fp32") -> np.ndarray:
    """The paper code's inference: 341-px patches at stride 170, outputs averaged by a count map (uint8 in, float out)."""
    import torch

    s = model.config.scale
    out = np.zeros((lr.shape[0], lr.shape[1] * s, lr.shape[2] * s), np.float32)
    count = np.zeros(out.shape[1:], np.float32)
    h, w = lr.shape[1:]
    starts = lambda n: sorted({*range(0, max(n - PATCH, 0) + 1, STRIDE), max(n - PATCH, 0)})  # noqa: E731
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), cast:
        for y in starts(h):
            for x in starts(w):
                patch = torch.from_numpy(lr[:, y : y + PATCH, x : x + PATCH].astype(np.float32) / 255)[:, None]
                pred = model(patch.contiguous(memory_format=torch.channels_last)).float()[:, 0].numpy()
                out[:, s * y : s * y + pred.shape[1], s * x : s * x + pred.shape[2]] += pred
                count[s * y : s * y + pred.shape[1], s * x : s * x + pred.shape[2]] += 1
    return np.clip(np.rint(out / count * 255), 0, 255).astype(np.uint8)


def volume(slices: int, mosaic: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR): each HR slice a ``mosaic`` x ``mosaic`` mosaic of real 519 x 519 validation slices, LR its x3 scan."""
    import evaluate_zoo
    from predict_common import validation_slices

    tiles = validation_slices(slices * mosaic * mosaic, 519).reshape(slices, mosaic, mosaic, 519, 519)
    hr = tiles.transpose(0, 1, 3, 2, 4).reshape(slices, mosaic * 519, mosaic * 519)
    return evaluate_zoo.acquire(hr, 3, "em-like", seed=0)[0], hr


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM, MB): unlike ru_maxrss, it starts afresh at exec (Linux keeps ru_maxrss
    across execve, so a child would report its parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours_child(path: str, tile: str) -> None:
    """In its own process: our engine on the saved LR volume; prints seconds and peak RSS (MB) as JSON."""
    import napari_emsr as emsr
    from napari_emsr.model_io import resolve_model_path

    lr = np.load(path)
    model = emsr.load_model(resolve_model_path("em-x3"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emsr.super_resolve(lr[:1], model, tile="auto" if tile == "auto" else None)  # warm-up (and the tile timing)
        start = time.perf_counter()
        emsr.super_resolve(lr, model, tile="auto" if tile == "auto" else None)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


PSSR_CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from pssr.models import ResUNet
torch.set_num_threads(int(sys.argv[2]))
lr = np.load(sys.argv[1]).astype(np.float32)  # PSSR2 takes 0..255 intensities
model = ResUNet(channels=1, scale=3).eval()
tile = 128
def run(vol):
    out = np.zeros((vol.shape[0], vol.shape[1] * 3, vol.shape[2] * 3), np.float32)
    with torch.inference_mode():
        for z in range(vol.shape[0]):
            for y in range(0, vol.shape[1], tile):
                for x in range(0, vol.shape[2], tile):
                    patch = vol[z, y : y + tile, x : x + tile]
                    ph, pw = patch.shape
                    padded = np.pad(patch, ((0, tile - ph), (0, tile - pw)), mode="reflect")
                    pred = model(torch.from_numpy(padded)[None, None])[0, 0].numpy()
                    out[z, 3 * y : 3 * (y + ph), 3 * x : 3 * (x + pw)] = pred[: 3 * ph, : 3 * pw]
    return out
run(lr[:1])
start = time.perf_counter()
run(lr)
seconds = time.perf_counter() - start
hwm = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm,
                  "params": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}))
"""


def pssr_venv() -> Path:
    """Create benchmarks/.peers-venv with this machine's CPU torch wheel and pssr (once); return its python."""
    python = VENV / "bin" / "python"
    if not (VENV / ".pssr-installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        torch_version = __import__("torch").__version__.split("+")[0]
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={torch_version}"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pssr"], check=True)
        (VENV / ".pssr-installed").touch()
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--mosaic", type=int, default=3, help="each slice a k x k mosaic of validation slices")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pssr", action="store_true", help="leave out PSSR2 (no virtual environment made)")
    parser.add_argument("--json", default=str(HERE / "results" / "peers.json"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        ours_child(*args.child)
        return
    import napari_emsr as emsr
    from predict_common import machine
    from skimage.transform import rescale

    from napari_emsr.device import resolve_precision
    from napari_emsr.metrics import psnr
    from napari_emsr.model_io import resolve_model_path

    lr, hr = volume(args.slices, args.mosaic)
    out_mp = lr.shape[0] * lr.shape[1] * lr.shape[2] * 9 / 1e6
    model = emsr.load_model(resolve_model_path("em-x3")).eval()
    model = model.to(memory_format=torch.channels_last)
    results: dict = {"machine": machine(), "volume": list(lr.shape), "output_mp": out_mp, "rows": {}}

    def row(name: str, seconds: float, **more) -> None:
        results["rows"][name] = {"seconds": seconds, "output_mps": out_mp / seconds, **more}
        print(f"{name}: {results['rows'][name]}", flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = emsr.super_resolve(lr, model)  # also the warm-up
        start = time.perf_counter()
        engine = emsr.super_resolve(lr, model)
        row("ours (engine, defaults)", time.perf_counter() - start, precision=resolve_precision("auto", torch.device("cpu"))[0])
        for precision in ("fp32", "bf16"):
            published_scheme(model, lr[:1], precision)  # warm-up
            start = time.perf_counter()
            paper = published_scheme(model, lr, precision)
            diff = np.abs(paper.astype(float) - engine)
            row(f"published scheme (341 / 170, count-averaged), {precision}", time.perf_counter() - start,
                max_diff_vs_ours=float(diff.max()), mean_diff_vs_ours=float(diff.mean()),
                psnr_vs_ours=float(10 * np.log10(255**2 / max(np.mean(diff**2), 1e-12))))  # fmt: skip
        start = time.perf_counter()
        cubic = np.stack([rescale(p / 255.0, 3, order=3) for p in lr])
        row("bicubic (scikit-image)", time.perf_counter() - start)
    for name, a in (("ours", engine), ("bicubic", np.clip(cubic * 255, 0, 255))):
        results["rows"]["ours (engine, defaults)" if name == "ours" else "bicubic (scikit-image)"]["psnr_vs_hr"] = float(
            np.mean([psnr(h, x[: h.shape[0], : h.shape[1]], data_range=255) for h, x in zip(hr, a, strict=True)]))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "lr.npy")
        np.save(path, lr)
        for tile in ("default", "auto"):
            done = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--child", path, tile],
                                  capture_output=True, text=True, check=True, cwd=HERE)  # fmt: skip
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            row(f"ours, own process, tile {tile}", measured["seconds"], peak_rss_mb=measured["peak_rss_mb"])
        if not args.no_pssr:
            python = pssr_venv()
            done = subprocess.run([str(python), "-c", PSSR_CHILD, path, str(args.threads)], capture_output=True,
                                  text=True, check=True)  # fmt: skip
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            row("PSSR2 ResUNet (pssr 2.x, random weights), own process", measured["seconds"],
                peak_rss_mb=measured["peak_rss_mb"], params=measured["params"])  # fmt: skip
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = ["| method | s | output MP/s | peak RSS MB | vs ours |", "|---|---|---|---|---|"]
    for name, r in results["rows"].items():
        vs = f"max {r['max_diff_vs_ours']:.0f}, mean {r['mean_diff_vs_ours']:.2f}, {r['psnr_vs_ours']:.1f} dB" if (
            "psnr_vs_ours" in r) else ""  # fmt: skip
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else ""
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['output_mps']:.2f} | {rss} | {vs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
