#!/usr/bin/env bash
# Set up everything on a fresh machine, then open napari on napari-emsr's first screen: the sample EM
# pair loaded and the Super-resolve panel docked with the LR as input (one click shows a result).
# Given files (e.g. `scripts/napari.sh scan.mrc`), opens those instead. Without a screen, napari
# opens on a virtual one.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
emsr_apt
emsr_venv "napari,qt"
cd "$ROOT"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "[napari] no display found: starting napari on a virtual display (Xvfb)"
    exec xvfb-run -a -s "-screen 0 1280x1024x24" "$VENV/bin/python" -m napari_emsr._napari.launch "$@"
fi
exec "$VENV/bin/python" -m napari_emsr._napari.launch "$@"
