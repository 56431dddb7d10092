"""Make docs/images/napari-isotropic-xz.png: an anisotropic stack and its isotropic reconstruction, seen in xz.

Simulates a K = 5 acquisition (sections every 50 nm under 10 nm pixels, as benchmarks/isotropic.py
does) of a centred 192 x 192 crop of the held-out FlyEM validation_sample. Opens it in napari with
its voxel size, reconstructs it through the Isotropic panel with a model file (the clicks a user
makes: the layer, "Model file...", Run), then shows the input and the result side by side in the
xz view (z down, x across) and saves a screenshot of the window.

``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/napari_screenshot_isotropic.py``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from napari_screenshot_training import ROOT, _settle, _wait_for  # scripts/ is on sys.path when run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "benchmarks" / "results" / "isotropic-flyem.safetensors")
    parser.add_argument("--factor", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "napari-isotropic-xz.png")
    args = parser.parse_args(argv)

    import napari

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _data import load_stack

    from napari_emsr.isotropic import sample_sections

    volume = load_stack("validation_sample").astype(np.float32)
    c0 = (volume.shape[1] - 192) // 2
    sections = sample_sections(volume[:, c0 : c0 + 192, c0 : c0 + 192], args.factor, seed=100 + int(args.factor))
    sections = np.clip(np.rint(sections), 0, 255).astype(np.uint8)

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 900)
    name = f"sections every {10 * args.factor:g} nm"
    viewer.add_image(sections, name=name, scale=(10 * args.factor, 10, 10), colormap="gray")
    _, panel = viewer.window.add_plugin_dock_widget("napari-emsr", "Isotropic")
    panel.layer_combo.set_layer(name)
    panel.source.value = "Model file..."
    panel.model_file.value = args.model
    outcome = _wait_for(panel.run_panel.ended, panel.run)
    if outcome != ["done"]:
        raise SystemExit(f"the reconstruction failed: {panel.run_panel.status.text()}")
    viewer.dims.order = (1, 0, 2)  # y on the slider: the xz plane on screen
    viewer.dims.set_point(1, 10 * 96)
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 2)
    viewer.reset_view()
    _settle()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out}: {panel.run_panel.status.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
