"""Side by side: LR (bicubic), SR and HR in a grid sharing one camera and slider; and back."""

import numpy as np

from napari_emsr._napari.common.layers import overlay_transform
from napari_emsr._napari.side_by_side import compare, find_hr, find_sr, layers_in_grid_order

from .conftest import dock


def _fake_result(viewer, lr):
    """A layer placed as a x3 Super-resolve result of ``lr`` (the engine is not needed here)."""
    return viewer.add_image(
        np.zeros((16, 519, 519), np.uint8),
        name=f"{lr.name} SR x3",
        metadata={"napari_emsr": {"source_layer": lr.name}},
        **overlay_transform(lr, 3, (0, 0, 0)),
    )


def test_an_uncertainty_map_is_neither_the_sr_nor_the_hr(sample, qtbot):
    """A map (finer than the LR, over it, newest) is not guessed as the SR nor as the HR, nor listed."""
    viewer = sample
    lr, hr = viewer.layers["EM LR 30 nm"], viewer.layers["EM HR 10 nm"]
    sr = _fake_result(viewer, lr)
    spread = viewer.add_image(np.zeros((16, 519, 519), np.float32), name=f"{lr.name} SR x3 uncertainty",
                              metadata={"napari_emsr": {"source_layer": lr.name, "kind": "uncertainty"}},
                              **overlay_transform(lr, 3, (0, 0, 0)))  # fmt: skip
    assert find_sr(viewer, lr) is sr and find_hr(viewer, lr, sr) is hr and find_hr(viewer, lr) is hr
    widget = dock(viewer, qtbot, "Side by side")
    widget.lr.set_layer(lr)
    assert widget.sr.layer() is sr and widget.hr.layer() is hr
    assert all(spread.name not in combo.names() for combo in (widget.lr, widget.sr, widget.hr))


def test_compare_and_back_with_napari_grid_button(sample, qtbot):
    viewer = sample
    lr, hr = viewer.layers["EM LR 30 nm"], viewer.layers["EM HR 10 nm"]
    other = viewer.add_image(np.ones((4, 4)), name="other")
    sr = _fake_result(viewer, lr)
    order = [layer.name for layer in viewer.layers]
    assert find_sr(viewer, lr) is sr and find_hr(viewer, lr, sr) is hr
    viewer.dims.set_point(0, 50.0)

    compare(viewer, lr, sr, hr)
    grid = viewer.canvas.grid
    assert grid.enabled and grid.actual_shape(viewer.layers) == (1, 3)
    assert layers_in_grid_order(viewer) == [lr, sr, hr]  # left to right
    assert not other.visible and lr.interpolation2d == "catrom"  # LR drawn as bicubic up-sampling
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], hr.extent.world[:, 1:].mean(axis=0))
    assert viewer.dims.point[0] == 50.0  # the slice is unchanged (one slider for all)

    grid.enabled = False  # napari's own grid button: back to the overlay
    assert [layer.name for layer in viewer.layers] == order
    assert other.visible and lr.interpolation2d == "nearest"


def test_widget_guesses_layers_and_toggles(sample, qtbot):
    viewer = sample
    lr, hr = viewer.layers["EM LR 30 nm"], viewer.layers["EM HR 10 nm"]
    sr = _fake_result(viewer, lr)
    widget = dock(viewer, qtbot, "Side by side")
    widget.lr.set_layer(lr)
    assert widget.sr.layer() == sr and widget.hr.layer() == hr  # napari hands widgets proxies: ==, not is
    widget.show_button.click()
    assert viewer.canvas.grid.enabled and layers_in_grid_order(viewer) == [lr, sr, hr]
    assert "Left to right" in widget.status.text()
    widget.overlay_button.click()
    assert not viewer.canvas.grid.enabled and all(layer.visible for layer in viewer.layers)


def test_same_layer_twice_is_refused(sample, qtbot, notes):
    viewer = sample
    widget = dock(viewer, qtbot, "Side by side")
    widget.lr.set_layer("EM LR 30 nm")
    widget.sr.set_layer("EM LR 30 nm")
    widget.show_button.click()
    assert "different layers" in notes()[-1] and not viewer.canvas.grid.enabled


def test_xz_and_yz_views_cut_every_layer_at_the_cursor(sample, qtbot):
    viewer = sample
    lr, hr = viewer.layers["EM LR 30 nm"], viewer.layers["EM HR 10 nm"]
    sr = _fake_result(viewer, lr)
    widget = dock(viewer, qtbot, "Side by side")
    widget.lr.set_layer(lr)
    widget.show_button.click()
    viewer.cursor.position = (70.0, 2500.0, 3000.0)  # world nm: over the HR field
    widget.view_buttons["xz"].click()
    assert tuple(viewer.dims.order) == (1, 0, 2) and list(viewer.dims.displayed) == [0, 2]
    assert viewer.dims.point[1] == 2500.0  # the xz plane through the cursor's y
    assert viewer.canvas.grid.enabled and layers_in_grid_order(viewer) == [lr, sr, hr]  # still side by side
    assert "xz planes of every layer, at the same y" in widget.status.text()
    # each layer shows its own xz plane at that y: the HR's row there is its data row of that world y
    row = int(round(float(hr.world_to_data((70.0, 2500.0, 3000.0))[1])))
    np.testing.assert_array_equal(hr._slice.image.raw, np.asarray(hr.data)[:, row, :])
    widget.view_buttons["yz"].click()
    assert tuple(viewer.dims.order) == (2, 0, 1) and viewer.dims.point[2] == 3000.0
    widget.view_buttons["xy"].click()
    assert tuple(viewer.dims.order) == (0, 1, 2)
