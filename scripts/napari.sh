#!/usr/bin/env bash
# Set up everything on a fresh machine, then open napari with the napari-emsr plugin.
# Arguments go to napari (e.g. a file to open). Without a screen, napari opens on a virtual one.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
emsr_apt
emsr_venv "napari,qt"
cd "$ROOT"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "[napari] no display found: starting napari on a virtual display (Xvfb)"
    exec xvfb-run -a -s "-screen 0 1280x1024x24" "$VENV/bin/napari" "$@"
fi
exec "$VENV/bin/napari" "$@"
