# Shared set-up for scripts/napari.sh and scripts/test.sh; sourced, not run.
# Idempotent: a second run only checks. Works on a fresh Debian machine with Python >= 3.10.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EMSR_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

# Debian packages Qt needs to draw napari on a real or virtual (Xvfb) display.
APT_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 \
libgl1-mesa-dri libglib2.0-0 libdbus-1-3 libfontconfig1 fonts-dejavu-core"

emsr_apt() {
    local missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "[setup] installing Debian packages:$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

emsr_venv() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "[setup] creating virtual environment $VENV"
        "$PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
    # torch first, pinned to the CPU wheel this machine kind carries, unless one is present
    # (a user's own CUDA build is kept). A bare range would pull a multi-GB CUDA build.
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        echo "[setup] installing torch (CPU build)"
        "$VENV/bin/python" -m pip install -q "torch==${EMSR_TORCH_VERSION:-2.13.0}"
    fi
    # Re-install only when pyproject.toml changed since the last successful install.
    local stamp="$VENV/.emsr-installed-$extras"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        echo "[setup] installing napari-emsr[$extras] (editable)"
        "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
        touch "$stamp"
    fi
}
