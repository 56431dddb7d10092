"""Make docs/images/napari-finetune.png and docs/images/napari-compare.png from real use of the panels.

Opens the sample "EM pair (FlyEM FIB-SEM)" and, through the dock widgets (the same clicks a user
makes): locates the HR field in the LR stack and fine-tunes a new lite network on the pair in the
Fine-tune panel (screenshot 1), super-resolves the whole LR stack with the result, and compares it
and bicubic with the HR layer in the Compare panel, the three shown side by side (screenshot 2).

Without a screen, run it on a virtual one:
``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/napari_screenshot_training.py``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LR, HR = "EM LR 30 nm", "EM HR 10 nm"


def _wait_for(signal, start) -> list:
    """Call ``start()`` and run the event loop until ``signal`` fires; returns its arguments."""
    from qtpy.QtCore import QEventLoop

    loop, got = QEventLoop(), []
    signal.connect(lambda *args: (got.extend(args), loop.quit()))
    start()
    if not got:
        loop.exec()
    return got


def _settle(ms: int = 1500) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def _finetune(viewer, args, out: Path):
    dock, panel = viewer.window.add_plugin_dock_widget("napari-emsr", "Fine-tune")
    panel.lr_combo.setCurrentText(LR)
    panel.hr_combo.setCurrentText(HR)
    panel.engine.source.setCurrentText("New lite network (random weights)")
    panel.form.steps.setValue(args.steps)
    panel.form.val_every.setValue(args.val_every)
    panel.form.patch.setValue(args.patch)
    panel.form.out_path.setText(str(out))
    if _wait_for(panel.located, panel.locate) == [None]:
        raise SystemExit(f"locating failed: {panel.pair_status.text()}")
    outcome = _wait_for(panel.run_panel.ended, panel.train)
    if outcome != ["done"]:
        raise SystemExit(f"training ended with {outcome}: {panel.run_panel.status.text()}")
    return dock, panel


def _super_resolve(panel):
    sr = panel.super_resolve_with_it()
    sr.scope.setCurrentText("Whole stack (current slice first)")
    outcome = _wait_for(sr.run_panel.ended, sr.run)
    if outcome != ["done"]:
        raise SystemExit(f"super-resolving ended with {outcome}: {sr.run_panel.status.text()}")
    return sr


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--val-every", type=int, default=50)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--slice", type=int, default=15, help="the slice shown (15: a held-out validation slice)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)

    import napari

    from napari_emsr._napari.side_by_side import compare

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1720, 1000)
    viewer.open_sample("napari-emsr", "em_pair")
    viewer.dims.set_point(0, 10.0 * args.slice)
    with tempfile.TemporaryDirectory() as tmp:
        dock, panel = _finetune(viewer, args, Path(tmp) / "finetuned-lite.safetensors")
        viewer.layers[HR].visible = False  # the LR field, the HR field's rectangle and the preview inside it
        viewer.reset_view()
        _settle()
        args.out_dir.mkdir(parents=True, exist_ok=True)
        viewer.window.screenshot(path=str(args.out_dir / "napari-finetune.png"), canvas_only=False)
        print(f"fine-tune: {panel.run_panel.status.text()}")

        sr = _super_resolve(panel)
        for name in ("Fine-tune (napari-emsr)", "Super-resolve (napari-emsr)"):
            viewer.window.dock_widgets[name].parent().hide()
        _, cmp = viewer.window.add_plugin_dock_widget("napari-emsr", "Compare")
        viewer.layers[HR].visible = True
        cmp.reference.setCurrentText(HR)
        cmp.methods.set_layers([sr.result_layer])
        cmp.lr.setCurrentText(LR)
        if _wait_for(cmp.run_panel.ended, cmp.run) != ["done"]:
            raise SystemExit(f"comparing failed: {cmp.run_panel.status.text()}")
        compare(viewer, viewer.layers[LR], sr.result_layer, viewer.layers[HR])
        _settle()
        viewer.window.screenshot(path=str(args.out_dir / "napari-compare.png"), canvas_only=False)
        for record in cmp.records:
            print(record["method"], record["scope"], {k: record.get(k) for k in ("psnr", "ssim", "frc_mean",
                                                                                 "resolution_nm")})  # fmt: skip
    viewer.close()


if __name__ == "__main__":
    main()
