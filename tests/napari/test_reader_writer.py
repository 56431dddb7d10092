"""Reader and writer contributions, through napari (viewer.open / layer.save with plugin napari-emsr)."""

import dask.array as da
import numpy as np
import pytest
from skimage.io import imsave

from napari_emsr._napari.io.reader import get_reader
from napari_emsr.io import ngff_transforms, open_volume, open_writer


def _tiff(path, data, pixel_nm):
    writer = open_writer(path, shape=data.shape, dtype=data.dtype, pixel_size_nm=pixel_nm)
    writer.open()
    for z, plane in enumerate(data):
        writer.write(z, plane)
    return writer.commit()


def test_reader_opens_an_ome_tiff_lazily_with_its_pixel_size(make_napari_viewer, tmp_path, rng):
    data = rng.integers(0, 255, (5, 40, 30), dtype=np.uint8)
    path = _tiff(tmp_path / "scan.ome.tif", data, (40.0, 12.0, 12.0))
    viewer = make_napari_viewer()
    [layer] = viewer.open(path, plugin="napari-emsr")
    assert isinstance(layer.data, da.Array)  # lazy: slices are read when shown
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    np.testing.assert_allclose(layer.scale, (40, 12, 12))
    assert [str(u) for u in layer.units] == ["nanometer"] * 3
    assert layer.name == "scan.ome.tif"


def test_reader_opens_a_folder_of_png_slices(make_napari_viewer, tmp_path, rng):
    folder = tmp_path / "slices"
    folder.mkdir()
    planes = rng.integers(0, 255, (3, 24, 20), dtype=np.uint8)
    for i, plane in enumerate(planes):
        imsave(folder / f"z{i + 1}.png", plane, check_contrast=False)  # natural order: z1, z2, z3
    assert get_reader(str(folder)) is not None
    [layer] = make_napari_viewer().open(folder, plugin="napari-emsr")
    np.testing.assert_array_equal(np.asarray(layer.data), planes)
    np.testing.assert_allclose(layer.scale, (1, 1, 1))  # PNGs say nothing of the pixel size


def test_reader_places_an_ome_zarr_with_its_translation(make_napari_viewer, tmp_path, rng):
    data = rng.integers(0, 255, (2, 30, 30), dtype=np.uint8)
    axes, transforms = ngff_transforms((50.0, 30.0, 30.0), 3, scale=3)  # an x3 result of 30 nm input
    multiscale = {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
    writer = open_writer(tmp_path / "sr.ome.zarr", shape=data.shape, dtype=data.dtype, multiscale=multiscale,
                         fingerprint={"test": 1})  # fmt: skip
    writer.open()
    for z, plane in enumerate(data):
        writer.write(z, plane)
    writer.commit()
    [layer] = make_napari_viewer().open(tmp_path / "sr.ome.zarr", plugin="napari-emsr")
    np.testing.assert_allclose(layer.scale, (50, 10, 10))
    np.testing.assert_allclose(layer.translate, (0, -10, -10))


def test_get_reader_declines_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(empty)) is None
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) is None


def test_reader_error_is_clear(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00 this is not a TIFF")
    with pytest.raises(ValueError, match="broken.tif: not a readable TIFF"):
        get_reader(str(bad))(str(bad))


@pytest.mark.parametrize("name", ["out.ome.tif", "out.ome.zarr"])
def test_writer_keeps_pixel_size_and_position(make_napari_viewer, tmp_path, rng, name):
    viewer = make_napari_viewer()
    data = rng.integers(0, 60000, (3, 20, 24), dtype=np.uint16)
    layer = viewer.add_image(data, scale=(40, 10, 10), translate=(0, -10, -10), units=("nm",) * 3)
    layer.save(str(tmp_path / name), plugin="napari-emsr")
    with open_volume(tmp_path / name) as volume:
        np.testing.assert_array_equal(np.asarray(volume.data), data)
        assert volume.pixel_size_nm == (40, 10, 10)
    [back] = viewer.open(tmp_path / name, plugin="napari-emsr")
    np.testing.assert_allclose(back.scale, (40, 10, 10))
    if name.endswith(".zarr"):
        np.testing.assert_allclose(back.translate, (0, -10, -10))  # OME-Zarr keeps the position too


def test_writer_converts_micrometres_and_refuses_rgb(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.ones((8, 8), np.float32), scale=(0.03, 0.03), units=("um", "um"))
    layer.save(str(tmp_path / "um.ome.tif"), plugin="napari-emsr")
    with open_volume(tmp_path / "um.ome.tif") as volume:
        np.testing.assert_allclose(volume.pixel_size_nm, (30, 30))
    rgb = viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True)
    with pytest.raises(TypeError, match="RGB"):
        rgb.save(str(tmp_path / "rgb.ome.tif"), plugin="napari-emsr")
    assert not (tmp_path / "rgb.ome.tif").exists()
