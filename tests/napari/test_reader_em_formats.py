"""The reader contribution on MRC, HDF5 and N5 files and on pyramids (multiscale layers), through napari.

Real FIB-SEM crops (FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples, CC BY 3.0).
"""

import json

import dask.array as da
import h5py
import mrcfile
import numpy as np
import pytest
import tensorstore as ts
import zarr

from napari_emsr._napari.io.reader import get_reader


@pytest.fixture(scope="module")
def stack(data_dir):
    """Four real training slices, cropped (z, y, x) = (4, 96, 80), uint8."""
    from skimage.io import imread

    files = sorted((data_dir / "training_sample2").glob("*.png"))[:4]
    return np.stack([imread(f)[20:116, 30:110] for f in files])


def test_reader_opens_an_mrc_with_its_voxel_size(make_napari_viewer, tmp_path, stack):
    path = tmp_path / "tomo.rec"  # IMOD's name for a reconstruction
    with mrcfile.new(path) as mrc:
        mrc.set_data(stack.astype(np.int16))
        mrc.voxel_size = (80.0, 80.0, 300.0)
    assert get_reader(str(path)) is not None
    [layer] = make_napari_viewer().open(path, plugin="napari-emsr")
    assert isinstance(layer.data, da.Array) and layer.name == "tomo.rec"
    np.testing.assert_array_equal(np.asarray(layer.data), stack)
    np.testing.assert_allclose(layer.scale, (30, 8, 8))


def test_reader_opens_each_image_of_an_hdf5(make_napari_viewer, tmp_path, stack):
    path = tmp_path / "sample.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=stack).attrs["resolution"] = [40.0, 4.0, 4.0]
        f.create_dataset("volumes/smooth", data=stack // 2)
    layers = make_napari_viewer().open(path, plugin="napari-emsr")
    assert [layer.name for layer in layers] == ["sample.h5:/volumes/raw", "sample.h5:/volumes/smooth"]
    np.testing.assert_array_equal(np.asarray(layers[0].data), stack)
    np.testing.assert_allclose(layers[0].scale, (40, 4, 4))
    np.testing.assert_allclose(layers[1].scale, (1, 1, 1))  # no resolution attribute: pixels


def test_reader_shows_an_ome_zarr_pyramid_as_one_multiscale_layer(make_napari_viewer, tmp_path, stack):
    path = tmp_path / "pyramid.ome.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for k in range(3):
        root.create_array(str(k), data=stack[:, :: 2**k, :: 2**k], chunks=(1, 48, 48))
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [30.0, 10.0 * 2**k, 10.0 * 2**k]}]})
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    [layer] = make_napari_viewer().open(path, plugin="napari-emsr")
    assert layer.multiscale and len(layer.data) == 3
    assert [tuple(level.shape) for level in layer.data] == [(4, 96, 80), (4, 48, 40), (4, 24, 20)]
    np.testing.assert_allclose(layer.scale, (30, 10, 10))  # level 0's pixel size
    np.testing.assert_array_equal(np.asarray(layer.data[2]), stack[:, ::4, ::4])


def test_reader_shows_an_n5_pyramid_as_one_multiscale_layer(make_napari_viewer, tmp_path, stack):
    root = tmp_path / "scan.n5"
    root.mkdir()
    (root / "attributes.json").write_text(json.dumps({"n5": "2.3.0", "pixelResolution": {"dimensions": [10, 10, 30], "unit": "nm"}}))
    for k in range(2):
        level = stack[:, :: 2**k, :: 2**k]
        spec = {"driver": "n5", "kvstore": {"driver": "file", "path": str(root / f"s{k}")}, "create": True,
                "metadata": {"dimensions": list(level.shape[::-1]), "blockSize": [32, 32, 1], "dataType": "uint8",
                             "compression": {"type": "gzip"}}}  # fmt: skip
        ts.open(spec).result().write(level.T).result()
    assert get_reader(str(root)) is not None
    [layer] = make_napari_viewer().open(root, plugin="napari-emsr")
    assert layer.multiscale and [tuple(level.shape) for level in layer.data] == [(4, 96, 80), (4, 48, 40)]
    np.testing.assert_allclose(layer.scale, (30, 10, 10))
    np.testing.assert_array_equal(np.asarray(layer.data[0]), stack)


def test_get_reader_takes_the_em_formats_and_declines_look_alikes(tmp_path):
    for name in ("a.mrc", "a.mrcs", "a.h5", "a.hdf5", "a.hdf"):
        (tmp_path / name).write_bytes(b"")
        assert get_reader(str(tmp_path / name)) is not None, name
    (tmp_path / "notes.st").write_text("a text file, not an IMOD stack")
    assert get_reader(str(tmp_path / "notes.st")) is None


@pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")  # a random model: placement only
def test_a_super_resolved_ome_zarr_reopens_as_a_multiscale_layer_over_its_input(make_napari_viewer, tmp_path):
    """emsr's own output: the pyramid written with each slice, reopened as one multiscale layer in place."""
    from napari_emsr import super_resolve
    from napari_emsr.samples import em_pair_file

    from .._predict_models import sensitive_model

    viewer = make_napari_viewer()
    with em_pair_file("lr") as lr_path:
        [lr] = viewer.open(lr_path, plugin="napari-emsr")
        out = tmp_path / "sr.ome.zarr"
        super_resolve(lr_path, sensitive_model(3), output=out, pixel_size=30.0)
    [sr] = viewer.open(out, plugin="napari-emsr")
    assert sr.multiscale and [level.shape for level in sr.data] == [(16, 519, 519), (16, 260, 260)]
    np.testing.assert_allclose(sr.scale[1:], np.asarray(lr.scale[1:]) / 3)
    # the first output pixel's centre lies 1/3 of an LR pixel inside the first LR pixel's edge
    first = np.asarray(sr.data_to_world((0, 0, 0)))
    np.testing.assert_allclose(first[1:], np.asarray(lr.data_to_world((0, 0, 0)))[1:] + (1 / 3 - 1) / 2 * 30, atol=1e-6)
