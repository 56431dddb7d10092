"""Make docs/images/napari-super-resolve.png: the Super-resolve panel docked, a real result shown.

Opens the sample "EM pair (FlyEM FIB-SEM)", super-resolves the whole LR stack with MODEL through
the Super-resolve dock widget (the same clicks a user makes; without MODEL, the default model), then shows LR (bicubic), SR and HR
side by side and saves a screenshot of the whole window.

Without a screen, run it on a virtual one:
``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/napari_screenshot.py [MODEL]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="?", help="a model file (.safetensors); default: the shipped default model")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "napari-super-resolve.png")
    parser.add_argument("--slice", type=int, default=8, help="the slice shown (and super-resolved first)")
    parser.add_argument("--view", choices=["xy", "xz", "yz"], default="xy",
                        help="the plane shown in every cell (xz / yz: through the HR field's centre)")
    args = parser.parse_args(argv)

    import napari
    import numpy as np
    from qtpy.QtCore import QEventLoop, QTimer

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1720, 960)
    viewer.open_sample("napari-emsr", "em_pair")
    viewer.dims.set_point(0, 10.0 * args.slice)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-emsr", "Super-resolve")
    widget.layer_combo.set_layer("EM LR 30 nm")
    widget.scope.setCurrentText("Whole stack (current slice first)")
    if args.model is not None:
        widget.engine.set_model_file(args.model)  # otherwise the panel's first choice: the default model
    loop = QEventLoop()
    outcome: list[str] = []
    widget.run_panel.ended.connect(lambda result: (outcome.append(result), loop.quit()))
    widget.run()
    loop.exec()
    if outcome != ["done"]:
        raise SystemExit(f"the run ended with {outcome}: {widget.run_panel.status.text()}")
    widget.side_by_side()
    if args.view == "xy":
        viewer.scene.camera.zoom *= 1.6  # closer than "HR fills its cell": 10 nm pixels become visible
    else:
        from napari_emsr._napari.side_by_side import orthogonal_view

        hr = viewer.layers["EM HR 10 nm"]
        viewer.cursor.position = tuple(np.asarray(hr.extent.world, dtype=float).mean(axis=0))
        orthogonal_view(viewer, args.view)
        # the sample is 16 slices (160 nm) thin: centre on the HR field and zoom to a quarter of its width
        shown = list(viewer.dims.displayed)
        extent = np.asarray(hr.extent.world, dtype=float)[:, shown]
        height, width = viewer.canvas.viewbox_size(viewer.layers)
        viewer.scene.camera.center = tuple(extent.mean(axis=0))
        viewer.scene.camera.zoom = 4 * 0.95 * width / (extent[1, 1] - extent[0, 1])
    QTimer.singleShot(1500, loop.quit)  # let the canvas and the dock settle
    loop.exec()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(path=str(args.out), canvas_only=False)
    print(f"{widget.run_panel.status.text()}\nscreenshot -> {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
