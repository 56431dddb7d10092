"""Layer helpers: the layer combo box, pixel sizes from scale and units, result placement."""

import numpy as np
from napari.layers import Image

from napari_emsr._napari.common.layers import (
    LayerCombo,
    acquired,
    coarsest,
    finest,
    is_result,
    is_uncertainty,
    matching_input,
    newest_result,
    overlay_transform,
    physical_geometry,
)


def test_layer_combo_follows_adds_renames_and_removals(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    a = viewer.add_image(np.zeros((4, 4)), name="a")
    viewer.add_points(np.zeros((1, 2)), name="pts")
    combo = LayerCombo(viewer)
    qtbot.addWidget(combo.native)
    b = viewer.add_image(np.zeros((4, 4)), name="b")
    assert combo.names() == ["a", "b"]  # image layers only
    combo.set_layer(a)
    a.name = "a renamed"
    assert combo.native.currentText() == "a renamed" and combo.layer() == a
    viewer.layers.selection.active = b
    viewer.layers.remove(a)
    assert combo.layer() == b
    with_none = LayerCombo(viewer, none_text="(none)")
    qtbot.addWidget(with_none.native)
    assert with_none.layer() is None and with_none.native.currentText() == "(none)"


def test_layer_combo_prefers_the_lr_not_the_layer_just_added(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    combo = LayerCombo(viewer)  # prefers the coarsest layer
    finer = LayerCombo(viewer, prefer=finest)
    qtbot.addWidget(combo.native)
    qtbot.addWidget(finer.native)
    lr = viewer.add_image(np.zeros((2, 10, 10)), name="LR 30 nm", scale=(30, 30, 30))
    hr = viewer.add_image(np.zeros((6, 30, 30)), name="HR 10 nm", scale=(10, 10, 10))  # napari makes it active
    assert viewer.layers.selection.active is hr
    assert (combo.layer(), finer.layer()) == (lr, hr)
    qtbot.wait(10)  # back in the event loop: a selection in the layer list is now the user's
    viewer.layers.selection.active = lr
    viewer.layers.selection.active = hr
    assert combo.layer() is hr  # followed the user's selection
    combo.native.setCurrentIndex(combo.names().index("LR 30 nm"))
    combo.native.activated.emit(combo.native.currentIndex())  # what a click in the list does
    viewer.layers.selection.active = lr
    viewer.layers.selection.active = hr
    assert combo.layer() is lr  # the user's pick in the panel wins over the layer list
    unknown = LayerCombo(viewer, accepts=False)
    qtbot.addWidget(unknown.native)
    viewer.layers.selection.active = lr
    assert unknown.layer() is lr  # prefers the coarsest; does not follow the selection
    viewer.layers.selection.active = hr
    assert unknown.layer() is lr


def test_an_uncertainty_map_is_neither_an_input_nor_a_result(make_napari_viewer, qtbot):
    """A Super-resolve uncertainty map names its source layer, but is not what was imaged nor an SR result."""
    viewer = make_napari_viewer()
    lr = viewer.add_image(np.zeros((10, 10)), name="lr", scale=(30, 30))
    sr = viewer.add_image(np.zeros((30, 30)), name="lr SR x3", scale=(10, 10), metadata={"napari_emsr": {"source_layer": "lr"}})
    spread = viewer.add_image(np.zeros((30, 30), np.float32), name="lr SR x3 uncertainty", scale=(10, 10),
                              metadata={"napari_emsr": {"source_layer": "lr", "kind": "uncertainty"}})  # fmt: skip
    layers = list(viewer.layers)
    assert is_uncertainty(spread) and not is_result(spread) and is_result(sr) and not is_uncertainty(sr)
    assert acquired(layers) == [lr] and newest_result(layers) is sr  # the map is on top, yet not "the result"
    inputs, every = LayerCombo(viewer, maps=False), LayerCombo(viewer)
    qtbot.addWidget(inputs.native)
    qtbot.addWidget(every.native)
    assert inputs.names() == ["lr", "lr SR x3"] and every.names() == ["lr", "lr SR x3", "lr SR x3 uncertainty"]
    qtbot.wait(10)
    viewer.layers.selection.active = sr
    viewer.layers.selection.active = spread  # selecting the map in the layer list is not followed
    assert inputs.layer() is sr and every.layer() is spread


def test_preferences_by_pixel_size(make_napari_viewer):
    viewer = make_napari_viewer()
    lr = viewer.add_image(np.zeros((10, 10)), name="lr", scale=(30, 30))
    hr = viewer.add_image(np.zeros((30, 30)), name="hr", scale=(10, 10))
    coarse = viewer.add_image(np.zeros((5, 5)), name="coarse", scale=(60, 60))
    sr = viewer.add_image(np.zeros((30, 30)), name="lr SR x3", scale=(10, 10), metadata={"napari_emsr": {"source_layer": "lr"}})
    layers = list(viewer.layers)
    assert coarsest(layers) is coarse and finest(acquired(layers)) is hr
    assert acquired(layers) == [lr, hr, coarse] and newest_result(layers) is sr

    class Model:
        metadata = type("Meta", (), {"input_pixel_size_nm": 30.0, "valid_input_pixel_size_nm": (20.0, 45.0)})

    assert matching_input(layers, Model()) is lr  # in the model's valid range, closest to its 30 nm
    assert matching_input([hr, coarse], Model()) is coarse  # none suits: the coarsest
    assert matching_input(layers, None) is coarse
    unknown = [viewer.add_image(np.zeros((8, 8)), name="small"), viewer.add_image(np.zeros((24, 24)), name="big")]
    assert coarsest(unknown).name == "small" and finest(unknown).name == "big"  # fewer pixels: coarser


def test_overlay_transform_is_the_pixel_centre_formula():
    layer = Image(np.zeros((4, 50, 60)), scale=(40, 30, 20), translate=(5, 7, 11))
    placed = overlay_transform(layer, 3, (2, 10, 20))
    np.testing.assert_allclose(placed["scale"], (40, 10, 20 / 3))
    # out_translate = in_translate + p * offset - p / 2 + p / (2 s), per in-plane axis
    np.testing.assert_allclose(placed["translate"], (5 + 80, 7 + 300 - 15 + 5, 11 + 400 - 10 + 10 / 3))


def test_overlay_transform_follows_rotation_and_affine():
    layer = Image(np.zeros((30, 40)), scale=(30, 30), translate=(100, -50), rotate=25, affine=[[1, 0.2], [0, 1]])
    result = Image(np.zeros((90, 120)), **overlay_transform(layer, 3, (4, 6)))
    for i, j in [(0, 0), (5, 7), (20, 30)]:
        # SR pixel (3i + 1, 3j + 1) of a result starting at LR pixel (4, 6) is centred on LR pixel (4 + i, 6 + j)
        np.testing.assert_allclose(
            result.data_to_world((3 * i + 1, 3 * j + 1)), layer.data_to_world((4 + i, 6 + j)), atol=1e-9
        )


def test_physical_geometry_reads_units():
    assert physical_geometry((1, 1), (0, 0), ("pixel", "pixel")) == (None, (0.0, 0.0))  # unknown
    assert physical_geometry((30, 30), (3, 3), ("pixel", "pixel")) == ((30.0, 30.0), (3.0, 3.0))  # nm assumed
    sizes, shift = physical_geometry((0.04, 0.01, 0.01), (0, -0.01, 0.5), ("um", "micrometer", "um"))
    np.testing.assert_allclose(sizes, (40, 10, 10))
    np.testing.assert_allclose(shift, (0, -10, 500))
    assert physical_geometry((1, 30), (0, 0), ("second", "nm")) == ((None, 30.0), None)
