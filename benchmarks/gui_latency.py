"""Does training from the Fine-tune panel keep napari responsive? The Qt event loop's lateness.

Opens napari with the sample "EM pair (FlyEM FIB-SEM)", docks the Fine-tune panel and trains on the
pair from it, as a user would (Train button, background worker, live plots, preview layer). A
precise QTimer fires every 10 ms in the GUI thread; each tick records how much later than 10 ms it
came (napari_emsr._napari.common.latency). Reported: the same figures for an idle viewer first (the
baseline), then during the run: ticks, median, 95th percentile and maximum lateness in ms.

Needs a display; without a screen run it on a virtual one:

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/gui_latency.py [--model tiny]

``--model tiny`` (the default) is the widget tests' network (tests/_predict_models.py: 8 channels,
one block, variance-preserving random weights): its steps are short and much of them is Python,
the hard case for the GIL that the worker shares with the GUI. ``lite`` / ``paper`` train the
presets from random weights (longer steps, mostly in torch kernels, which release the GIL).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wait(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def _tiny_model():
    """The widget tests' tiny x3 network (random, variance-preserving weights)."""
    sys.path.insert(0, str(ROOT))
    from tests._predict_models import sensitive_model

    return sensitive_model(3)


def _panel(viewer, args, folder: Path):
    from napari_emsr import save_model

    _, widget = viewer.window.add_plugin_dock_widget("napari-emsr", "Fine-tune")
    widget.lr_combo.setCurrentText("EM LR 30 nm")
    widget.hr_combo.setCurrentText("EM HR 10 nm")
    if args.model == "tiny":
        path = save_model(_tiny_model(), folder / "tiny.safetensors", trained=False)
        widget.engine.set_model_file(path)
    else:
        widget.engine.source.setCurrentText(f"New {args.model} network (random weights)")
    widget.engine.device.setCurrentText(args.device)
    widget.form.steps.setValue(args.steps)
    widget.form.val_every.setValue(args.val_every)
    widget.form.patch.setValue(args.patch)
    widget.form.out_path.setText(str(folder / "benchmark.safetensors"))
    return widget


def _measure_run(app, widget):
    from qtpy.QtCore import QEventLoop

    from napari_emsr._napari.common.latency import EventLoopLatency

    steps = []
    widget.run_panel.progressed.connect(lambda e: steps.append(e.step) if getattr(e, "kind", "") == "step" else None)
    loop, outcome = QEventLoop(), []
    widget.run_panel.ended.connect(lambda result: (outcome.append(result), loop.quit()))
    probe = EventLoopLatency(10)
    probe.start()
    started = time.perf_counter()
    widget.train()
    loop.exec()
    seconds = time.perf_counter() - started
    probe.stop()
    if outcome != ["done"]:
        raise SystemExit(f"the run ended with {outcome}: {widget.run_panel.status.text()}")
    return {**probe.summary(), "seconds": seconds, "steps": len(steps), "plot_draws": widget.plots.draws}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "lite", "paper"), default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--val-every", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_emsr._napari.common.latency import EventLoopLatency

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window.resize(1400, 1000)
    viewer.open_sample("napari-emsr", "em_pair")
    with tempfile.TemporaryDirectory() as tmp:
        widget = _panel(viewer, args, Path(tmp))
        _wait(app, 1.0)  # let the window and the dock settle
        idle = EventLoopLatency(10)
        idle.start()
        _wait(app, args.idle_seconds)
        idle.stop()
        results = {"idle": idle.summary(), "training": _measure_run(app, widget)}
    viewer.close()
    results["settings"] = {**vars(args), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                           "cpu": platform.processor() or platform.machine()}  # fmt: skip
    print(f"{'':<10}{'ticks':>7}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}")
    for name in ("idle", "training"):
        r = results[name]
        print(f"{name:<10}{r['ticks']:>7}{r['median_ms']:>11.2f}{r['p95_ms']:>9.1f}{r['max_ms']:>9.1f}")
    t = results["training"]
    print(f"training: {t['steps']} steps in {t['seconds']:.1f} s ({args.model}, patch {args.patch}), "
          f"{t['plot_draws']} plot draws")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
