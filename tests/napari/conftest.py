"""Fixtures for the widget tests: a tiny random-weight model file, the sample, notification records.

The tiny model checks mechanics only (shapes, placement, progress, cancellation): it makes no
claim of quality, and the widgets label its results "[random weights]".
"""

from __future__ import annotations

import pytest

from napari_emsr import save_model

from .._predict_models import sensitive_model


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A x3 tiny EMSR with random (variance-preserving) weights, for 30 nm input."""
    path = tmp_path_factory.mktemp("models") / "tiny_x3.safetensors"
    return save_model(sensitive_model(3), path, trained=False, input_pixel_size_nm=30)


@pytest.fixture
def sample(make_napari_viewer):
    """A shown viewer holding the sample "EM pair (FlyEM FIB-SEM)": layers LR, HR."""
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-emsr", "em_pair")
    return viewer


@pytest.fixture
def notes():
    """``notes("error")`` / ``notes("warning")``: messages of the notifications shown in this test."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    start = len(notification_manager.records)

    def messages(severity: str = "error") -> list[str]:
        new = notification_manager.records[start:]
        return [n.message for n in new if n.severity == NotificationSeverity(severity)]

    return messages


def dock(viewer, qtbot, name):
    """Open the napari-emsr dock widget ``name`` the way the Plugins menu does; wait until shown."""
    dock_widget, widget = viewer.window.add_plugin_dock_widget("napari-emsr", name)
    qtbot.waitUntil(dock_widget.isVisible)
    return widget


def run_and_wait(qtbot, panel, start, timeout=60_000):
    """Click/run ``start()`` on a widget with a RunPanel and wait for its outcome."""
    with qtbot.waitSignal(panel.ended, timeout=timeout) as blocker:
        start()
    return blocker.args[0]
