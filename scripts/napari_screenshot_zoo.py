"""Make docs/images/napari-compare-zoo.png: the old and the new default model in the Compare panel.

Opens the sample "EM pair (FlyEM FIB-SEM)" and, through the dock widgets (the clicks a user
makes), super-resolves the whole LR stack with each of the given zoo models (default: the first
default model, flyem-fibsem-x3, and the current default, "default"), scores them and bicubic against
the HR layer in the Compare panel, shows LR (bicubic), the last model's SR and HR side by side and
saves a screenshot of the window. Prints the Compare panel's records (PSNR, SSIM, mean FRC, FRC
resolution in nm) for the whole stack.

Without a screen, run it on a virtual one:
``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/napari_screenshot_zoo.py [NAME ...]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_screenshot_training import HR, LR, ROOT, _settle, _wait_for  # scripts/ is on sys.path when run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["flyem-fibsem-x3", "default"], help="zoo names")
    parser.add_argument("--slice", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "napari-compare-zoo.png")
    parser.add_argument("--json", type=Path, help="write the Compare records here")
    args = parser.parse_args(argv)

    import napari

    from napari_emsr._napari.side_by_side import compare
    from napari_emsr import zoo

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1720, 1000)
    viewer.open_sample("napari-emsr", "em_pair")
    viewer.dims.set_point(0, 10.0 * args.slice)
    _, sr = viewer.window.add_plugin_dock_widget("napari-emsr", "Super-resolve")
    results = []
    for name in args.models:
        entry = zoo.find(name)
        if entry is None:
            raise SystemExit(f"{name} is not in the zoo ({', '.join(zoo.zoo_names())})")
        sr.layer_combo.setCurrentText(LR)
        sr.scope.setCurrentText("Whole stack (current slice first)")
        sr.engine.set_zoo_model(entry.name)
        if _wait_for(sr.run_panel.ended, sr.run) != ["done"]:
            raise SystemExit(f"super-resolving with {name} failed: {sr.run_panel.status.text()}")
        sr.result_layer.name = f"SR {entry.name}"
        results.append(sr.result_layer)
    viewer.window.dock_widgets["Super-resolve (napari-emsr)"].parent().hide()
    _, cmp = viewer.window.add_plugin_dock_widget("napari-emsr", "Compare")
    cmp.reference.setCurrentText(HR)
    cmp.methods.set_layers(results)
    cmp.lr.setCurrentText(LR)
    if _wait_for(cmp.run_panel.ended, cmp.run) != ["done"]:
        raise SystemExit(f"comparing failed: {cmp.run_panel.status.text()}")
    compare(viewer, viewer.layers[LR], results[-1], viewer.layers[HR])
    _settle()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(path=str(args.out), canvas_only=False)
    records = [{k: r.get(k) for k in ("method", "scope", "psnr", "ssim", "frc_mean", "resolution_nm")} for r in cmp.records]
    for r in records:
        print(r)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2, default=float))
    print(f"screenshot -> {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
