"""The compute library must never import Qt or napari (only napari_emsr._napari may)."""

import pkgutil
import subprocess
import sys

import napari_emsr


def _compute_modules():
    names = []
    for info in pkgutil.walk_packages(napari_emsr.__path__, "napari_emsr."):
        if not info.name.startswith("napari_emsr._napari") and not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_compute_modules_import_no_gui():
    modules = _compute_modules()
    assert "napari_emsr.model.emsr" in modules and "napari_emsr.cli" in modules
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt', 'vispy'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"GUI modules loaded by the compute library: {result.stdout}"


def test_package_import_is_light():
    """napari imports the package when it discovers plugins: that must not load torch."""
    code = "import sys, napari_emsr; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False"


def test_public_api():
    for name in ("EMSRConfig", "build_emsr", "save_model", "load_model"):
        assert callable(getattr(napari_emsr, name))
