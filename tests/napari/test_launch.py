"""The first screen (scripts/napari.sh): data loaded, Super-resolve docked on the right layer, one click away."""

import numpy as np
import tifffile

from napari_emsr._napari.launch import first_screen, main

from .conftest import run_and_wait


def test_first_screen_is_the_sample_with_super_resolve_on_the_lr(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    panel = first_screen(viewer)
    assert [layer.name for layer in viewer.layers] == ["EM LR 30 nm", "EM HR 10 nm"]
    assert "Super-resolve (napari-emsr)" in viewer.window.dock_widgets
    assert panel.layer_combo.layer() is viewer.layers["EM LR 30 nm"]  # not the HR, added last and active
    assert panel.engine.zoo_model() is not None and panel.engine.zoo_model().name == "em-x3"
    panel.engine.device.value = "cpu"
    assert run_and_wait(qtbot, panel.run_panel, panel.run, timeout=120_000) == "done"  # the one click
    result = panel.result_layer
    assert result.name == "EM LR 30 nm SR x3 (slice 7)" and result.data.shape == (1, 519, 519)
    assert float(np.std(result.data)) > 5  # an image, not a blank


def test_first_screen_opens_a_given_file_instead(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    path = tmp_path / "scan.ome.tif"
    data = np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8)
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.03, "PhysicalSizeY": 0.03})
    panel = first_screen(viewer, [path])
    assert [layer.name for layer in viewer.layers] == ["scan.ome.tif"]
    assert panel.layer_combo.layer() is viewer.layers["scan.ome.tif"]
    np.testing.assert_array_equal(np.asarray(viewer.layers["scan.ome.tif"].data), data)


def test_launcher_refuses_a_missing_file(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.tif")])
    assert "missing.tif: no such file or folder" in capsys.readouterr().err
