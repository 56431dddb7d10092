"""The first screen: napari with data loaded and the Super-resolve panel docked, ready for one click.

``python -m napari_emsr._napari.launch`` (what ``scripts/napari.sh`` runs) opens the sample EM pair
(FlyEM FIB-SEM, LR 30 nm and HR 10 nm) and docks Super-resolve with the LR as its input; given
files (any format the napari-emsr reader opens: TIFF, PNG slices, Zarr, MRC, HDF5, N5), it opens
those instead. ``--screenshot FILE`` saves the window once it is drawn and quits (the picture in
docs/napari.md is made this way).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import napari

__all__ = ["first_screen", "main"]


def first_screen(viewer: "napari.viewer.Viewer", paths: Sequence[str | Path] = ()) -> Any:
    """Load ``paths`` (else the sample EM pair) into ``viewer`` and dock Super-resolve; return the panel.

    The panel's input is the layer whose pixel size suits the default model (the sample's LR), else the
    coarsest image layer (see :class:`~napari_emsr._napari.common.layers.LayerCombo`).
    """
    if paths:
        for path in paths:
            viewer.open(str(path), plugin="napari-emsr")
    else:
        viewer.open_sample("napari-emsr", "em_pair")
    _, panel = viewer.window.add_plugin_dock_widget("napari-emsr", "Super-resolve")
    viewer.reset_view()
    return panel


def main(argv: Sequence[str] | None = None) -> None:
    """Open napari on the first screen (see the module); ``argv`` as on the command line."""
    parser = argparse.ArgumentParser(prog="napari-emsr", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", metavar="FILE", help="volumes to open instead of the sample EM pair")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window once drawn, then quit")
    args = parser.parse_args(argv)
    for path in args.paths:
        if not Path(path).exists() and not any(ch in path for ch in "*?["):
            parser.error(f"{path}: no such file or folder")
    import napari

    viewer = napari.Viewer(title="napari-emsr")
    viewer.window.resize(1280, 860)
    first_screen(viewer, args.paths)
    if args.screenshot:
        from qtpy.QtCore import QTimer

        def shoot() -> None:
            viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
            print(f"saved {args.screenshot}")
            viewer.close()

        QTimer.singleShot(1500, shoot)
    napari.run()


if __name__ == "__main__":
    main()
