#!/usr/bin/env bash
# Set up everything on a fresh machine, lint (ruff) and type-check (mypy) the package, then run the
# whole test suite (GUI tests under Xvfb).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/test_model.py -x`.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
emsr_apt
emsr_venv "napari,test"
cd "$ROOT"
# Lint and type-check the package first (configured in pyproject.toml); either failing fails the script.
echo "[lint] ruff check src tests"
"$VENV/bin/ruff" check src tests
echo "[lint] mypy (cache: .mypy_cache)"
"$VENV/bin/mypy"
# pytest-xvfb starts a virtual display (1280x1024x24, see pyproject.toml) for the napari tests.
exec "$VENV/bin/python" -m pytest "$@"
