"""MRC / MRCS, HDF5 and N5 inputs, and OME-Zarr pyramids: read lazily, values exact, pixel sizes in nm.

The files are written here, with the libraries the formats' own tools use (mrcfile, h5py,
tensorstore, zarr), from real FIB-SEM crops (FlyEM project, Janelia Research Campus (HHMI),
neuroproof_examples, CC BY 3.0).
"""

import json
import struct
import subprocess
import sys

import dask.array as da
import h5py
import mrcfile
import numpy as np
import pytest
import tensorstore as ts
import tifffile
import zarr

from napari_emsr import open_volume, save_model, super_resolve
from napari_emsr.cli import main
from napari_emsr.io import AmbiguousDatasetError, MissingPackageError, VolumeError
from napari_emsr.io.containers import read_chunks, split_dataset
from napari_emsr.io.metadata import attribute_pixel_size, mrc_pixel_size

from ._predict_models import sensitive_model


@pytest.fixture(scope="module")
def stack(data_dir):
    """Six real training slices, cropped (z, y, x) = (6, 64, 48), uint8."""
    from skimage.io import imread

    files = sorted((data_dir / "training_sample1").glob("*.png"))[:6]
    return np.stack([imread(f)[100:164, 50:98] for f in files])


# -- MRC ------------------------------------------------------------------------------------------
def _mrc(path, data, voxel_size=None, stack=False):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if stack:
            mrc.set_image_stack()
        if voxel_size is not None:
            mrc.voxel_size = voxel_size  # x, y, z in Å
    return path


@pytest.mark.parametrize(
    ("mode", "convert"),
    [
        (0, lambda s: (s.astype(np.int16) - 128).astype(np.int8)),
        (1, lambda s: s.astype(np.int16) * 50 - 6000),
        (2, lambda s: s.astype(np.float32) / 255),
        (6, lambda s: s.astype(np.uint16) * 250),
    ],
)
def test_mrc_modes_round_trip_with_the_voxel_size_in_nm(stack, tmp_path, mode, convert):
    data = convert(stack)
    path = _mrc(tmp_path / "v.mrc", data, voxel_size=(40.0, 50.0, 400.0))
    with open_volume(path) as vol:
        assert vol.format == "mrc" and isinstance(vol.data, da.Array)
        assert mrcfile.open(path, header_only=True).header.mode == mode
        assert vol.dtype == data.dtype and vol.shape == data.shape
        assert vol.pixel_size_nm == pytest.approx((40.0, 5.0, 4.0))  # z, y, x from x, y, z in Å
        np.testing.assert_array_equal(vol.data.compute(), data)


def test_mrc_is_memory_mapped_and_read_only_when_computed(stack, tmp_path):
    path = _mrc(tmp_path / "v.mrc", stack.astype(np.int16))
    with open_volume(path) as vol:
        changed = stack[2].astype(np.int16) + 1000
        with open(path, "r+b") as handle:  # rewrite slice 2 on disk after opening
            handle.seek(1024 + 2 * stack[0].size * 2)
            handle.write(changed.astype("<i2").tobytes())
        np.testing.assert_array_equal(vol.data[2].compute(), changed)  # read from the map, not a copy made at open
    with pytest.raises(VolumeError, match="closed"):
        vol.data[0].compute()


def test_mrc_2d_image_and_unset_voxel_sizes(stack, tmp_path):
    with open_volume(_mrc(tmp_path / "one.mrc", stack[0].astype(np.float32), voxel_size=(80.0, 80.0, 1.0))) as vol:
        assert vol.shape == (64, 48) and vol.pixel_size_nm == pytest.approx((8.0, 8.0))
        np.testing.assert_array_equal(vol.data.compute(), stack[0])
    for unset in (0.0, 1.0):  # no cell, or IMOD's "1 Å" default: unknown, not 0.1 nm
        with open_volume(_mrc(tmp_path / f"u{unset}.mrc", stack.astype(np.int16), voxel_size=unset)) as vol:
            assert vol.pixel_size_nm is None


def test_mrcs_image_stack_has_no_z_spacing(stack, tmp_path):
    path = _mrc(tmp_path / "particles.mrcs", stack.astype(np.float32), voxel_size=(30.0, 30.0, 30.0), stack=True)
    with open_volume(path) as vol:
        assert vol.shape == stack.shape and vol.pixel_size_nm == pytest.approx((None, 3.0, 3.0))


def test_imod_unsigned_bytes_are_read_as_uint8(stack, tmp_path):
    path = _mrc(tmp_path / "imod.mrc", stack.view(np.int8))  # mode 0: int8 in MRC2014
    with open(path, "r+b") as handle:  # IMOD's stamp and flags (bit 0 clear: the bytes are unsigned)
        handle.seek(152)
        handle.write(struct.pack("<ii", 1146047817, 0))
    with open_volume(path) as vol:
        assert vol.dtype == np.uint8
        np.testing.assert_array_equal(vol.data.compute(), stack)
    with open(path, "r+b") as handle:
        handle.seek(156)
        handle.write(struct.pack("<i", 1))  # signed bytes
    with open_volume(path) as vol:
        assert vol.dtype == np.int8


def test_mrc_complex_and_rgb_modes_are_refused(stack, tmp_path):
    complex_path = _mrc(tmp_path / "fft.mrc", stack.astype(np.complex64))
    with pytest.raises(VolumeError, match="mode 4, complex float32 .*convert it to mode 0, 1, 2 or 6"):
        open_volume(complex_path)
    rgb = _mrc(tmp_path / "rgb.mrc", stack[:, :, :, None].repeat(2, axis=3).reshape(6, 64, 96).view(np.int16))
    with open(rgb, "r+b") as handle:
        handle.seek(12)
        handle.write(struct.pack("<i", 16))
    with pytest.raises(VolumeError, match="mode 16, RGB colour"):
        open_volume(rgb)


def test_an_old_header_without_the_map_stamp_is_read_with_a_warning(stack, tmp_path):
    path = _mrc(tmp_path / "old.mrc", stack.astype(np.int16), voxel_size=100.0)
    with open(path, "r+b") as handle:
        handle.seek(208)
        handle.write(b"\0\0\0\0")  # pre-MRC2000 files have no "MAP " stamp
    with pytest.warns(UserWarning, match="the MRC header is not standard .*read anyway"), open_volume(path) as vol:
        assert vol.pixel_size_nm == pytest.approx((10.0, 10.0, 10.0))
        np.testing.assert_array_equal(vol.data.compute(), stack)


def test_a_file_that_is_not_mrc_says_so(tmp_path):
    bad = tmp_path / "notes.mrc"
    bad.write_bytes(b"not an MRC file")
    with pytest.raises(VolumeError, match="not a readable MRC file"):
        open_volume(bad)


def test_mrc_pixel_size_rules():
    assert mrc_pixel_size((10.0, 10.0, 30.0), 3) == pytest.approx((3.0, 1.0, 1.0))
    assert mrc_pixel_size((10.0, 10.0, 30.0), 2) == pytest.approx((1.0, 1.0))
    assert mrc_pixel_size((10.0, 10.0, 30.0), 3, image_stack=True) == pytest.approx((None, 1.0, 1.0))
    assert mrc_pixel_size((1.0, 1.0, 1.0), 3) is None and mrc_pixel_size((0.0, 0.0, 0.0), 2) is None


# -- HDF5 -----------------------------------------------------------------------------------------
@pytest.fixture
def cremi(stack, tmp_path):
    """A CREMI-like file: raw and labels (two images), an annotation table, resolution in nm (z, y, x)."""
    path = tmp_path / "sample_A.hdf"
    with h5py.File(path, "w") as f:
        raw = f.create_dataset("volumes/raw", data=stack, chunks=(2, 32, 16), compression="gzip")
        raw.attrs["resolution"] = np.array([40.0, 4.0, 4.0])
        f.create_dataset("volumes/labels/neuron_ids", data=stack.astype(np.uint64) // 50)
        f.create_dataset("annotations/locations", data=np.zeros((5, 3)))
    return path


def test_hdf5_dataset_named_in_the_path_or_by_keyword(cremi, stack):
    for vol in (open_volume(f"{cremi}:/volumes/raw"), open_volume(f"{cremi}:volumes/raw"),
                open_volume(cremi, dataset="/volumes/raw")):  # fmt: skip
        with vol:
            assert vol.format == "hdf5" and str(vol.path) == f"{cremi}:/volumes/raw"
            assert vol.pixel_size_nm == pytest.approx((40.0, 4.0, 4.0))
            np.testing.assert_array_equal(vol.data.compute(), stack)
    with pytest.raises(ValueError, match="give one"):
        open_volume(f"{cremi}:/volumes/raw", dataset="volumes/labels/neuron_ids")


def test_hdf5_with_several_images_lists_them_and_says_how_to_choose(cremi):
    with pytest.raises(AmbiguousDatasetError) as info:
        open_volume(cremi)
    message = str(info.value)
    assert "holds 2 images (volumes/labels/neuron_ids (6, 64, 48) uint64, volumes/raw (6, 64, 48) uint8)" in message
    assert f"'{cremi}:/volumes/labels/neuron_ids'" in message and "annotations" not in message
    assert [c.name for c in info.value.candidates] == ["volumes/labels/neuron_ids", "volumes/raw"]
    with pytest.raises(VolumeError, match="has no dataset 'volumes/rw'; its images: volumes/labels"):
        open_volume(f"{cremi}:/volumes/rw")
    with open_volume(f"{cremi}:/volumes/labels") as vol:  # a group holding one image
        assert vol.dtype == np.uint64


def test_hdf5_is_lazy_chunked_and_open_until_closed(cremi, stack, monkeypatch):
    reads = []
    original = h5py.Dataset.__getitem__

    def counting(self, key):
        out = original(self, key)
        if out.size:
            reads.append(key)
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    vol = open_volume(f"{cremi}:/volumes/raw")
    assert reads == []  # opening reads no pixel
    assert all(c % 2 == 0 for c in vol.data.chunks[0][:-1]) and vol.data.chunks[1][0] % 32 == 0  # whole storage chunks
    np.testing.assert_array_equal(vol.data[3].compute(), stack[3])
    assert len(reads) == 1 and reads[0][0].start <= 3 < reads[0][0].stop  # one dask chunk: the one holding slice 3
    vol.close()
    with pytest.raises(VolumeError, match="closed"):
        vol.data[0].compute()


def test_hdf5_opened_read_only_without_locking_out_others(cremi):
    code = "import h5py, sys; f = h5py.File(sys.argv[1], sys.argv[2]); print(f['volumes/raw'].shape)"
    with open_volume(f"{cremi}:/volumes/raw"):
        for mode in ("r", "r+"):  # another reader, even a writer, still gets in
            done = subprocess.run([sys.executable, "-c", code, str(cremi), mode], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert "(6, 64, 48)" in done.stdout


def test_ilastik_export_with_axistags_and_element_size_um(stack, tmp_path):
    path = tmp_path / "export.h5"
    tags = {"axes": [{"key": k, "typeFlags": 2 if k != "c" else 1} for k in "zyxc"]}
    with h5py.File(path, "w") as f:
        d = f.create_dataset("exported_data", data=stack[..., None])
        d.attrs["axistags"] = json.dumps(tags)
        d.attrs["element_size_um"] = [0.03, 0.008, 0.008]
    with open_volume(path) as vol:  # the only image
        assert vol.shape == stack.shape and str(vol.path) == str(path)
        assert vol.pixel_size_nm == pytest.approx((30.0, 8.0, 8.0))
        np.testing.assert_array_equal(vol.data.compute(), stack)


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"element_size_um": [0.04, 0.01, 0.01]}, (40.0, 10.0, 10.0)),
        ({"element_size_um": [1.0, 1.0, 1.0]}, None),  # Fiji's "uncalibrated"
        ({"resolution": [40, 4, 4]}, (40.0, 4.0, 4.0)),
        ({"resolution": [0.04, 0.004, 0.004], "unit": "um"}, (40.0, 4.0, 4.0)),
        ({"pixel_size_nm": 6}, (None, 6.0, 6.0)),
        ({"pixel_size": [5, 5], "units": ["µm", "µm"]}, (None, 5000.0, 5000.0)),
        ({"voxel_size": 8.0}, (8.0, 8.0, 8.0)),
        ({"voxel_size": [30, 8, 8], "unit": b"nm"}, (30.0, 8.0, 8.0)),
        ({"pixelResolution": {"dimensions": [4, 5, 40], "unit": "nm"}}, (4.0, 5.0, 40.0)),
        ({"transform": {"axes": ["z", "y", "x"], "scale": [8, 4, 2], "units": ["nm"] * 3}}, (8.0, 4.0, 2.0)),
        ({"resolution": [-1, 0, 0]}, None),
        ({"title": "no size"}, None),
    ],
)
def test_attribute_pixel_size_in_hdf5_order(attrs, expected):
    assert attribute_pixel_size(attrs, 3) == (None if expected is None else pytest.approx(expected))


def test_attribute_pixel_size_in_n5_order_and_for_2d():
    n5 = {"pixelResolution": {"dimensions": [4, 5, 40], "unit": "um"}}
    assert attribute_pixel_size(n5, 3, order="xyz") == pytest.approx((40000.0, 5000.0, 4000.0))
    assert attribute_pixel_size({"resolution": [4, 5, 40]}, 3, order="xyz") == pytest.approx((40.0, 5.0, 4.0))
    assert attribute_pixel_size({"resolution": [40, 4, 5]}, 2) == pytest.approx((4.0, 5.0))  # y, x of a 2D image


# -- N5 -------------------------------------------------------------------------------------------
def _n5(folder, data, attrs=None, block=(16, 16, 2), compression=None):
    """An N5 dataset as Java's N5 writes it: ``dimensions`` and blocks x fastest (numpy's axes reversed)."""
    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(folder)},
        "metadata": {"dimensions": list(data.shape[::-1]), "blockSize": list(block), "dataType": str(data.dtype),
                     "compression": compression or {"type": "gzip"}},
        "create": True,
    }  # fmt: skip
    store = ts.open(spec).result()
    store.write(data.T).result()
    if attrs:
        meta = json.loads((folder / "attributes.json").read_text())
        (folder / "attributes.json").write_text(json.dumps({**meta, **attrs}))
    return store


def _group(folder, attrs):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attributes.json").write_text(json.dumps(attrs))


def test_n5_dataset_in_numpy_order_with_pixel_resolution(stack, tmp_path):
    root = tmp_path / "sample.n5"
    _group(root, {"n5": "2.3.0"})
    _n5(root / "raw", stack, {"pixelResolution": {"dimensions": [4.0, 5.0, 40.0], "unit": "nm"}})
    for given in (root, root / "raw", f"{root}:/raw"):
        with open_volume(given) as vol:
            assert vol.format == "n5" and vol.shape == stack.shape and vol.dtype == np.uint8
            assert vol.pixel_size_nm == pytest.approx((40.0, 5.0, 4.0))  # x, y, z in the file
            np.testing.assert_array_equal(vol.data.compute(), stack)
            np.testing.assert_array_equal(vol.data[4, 10:20, 7].compute(), stack[4, 10:20, 7])


def test_n5_block_layout_follows_the_spec(stack, tmp_path):
    """One raw block written by hand per the N5 spec (big-endian header and data, x fastest) reads right."""
    data = stack[:2, :4, :3].astype(np.uint16) * 100
    folder = tmp_path / "hand.n5" / "raw"
    _group(folder, {"dimensions": [3, 4, 2], "blockSize": [3, 4, 2], "dataType": "uint16", "compression": {"type": "raw"}})
    (folder / "0" / "0").mkdir(parents=True)
    header = struct.pack(">HHIII", 0, 3, 3, 4, 2)
    (folder / "0" / "0" / "0").write_bytes(header + data.astype(">u2").tobytes(order="C"))  # C order of (z, y, x) is x fastest
    with open_volume(folder) as vol:
        assert vol.shape == (2, 4, 3)
        np.testing.assert_array_equal(vol.data.compute(), data)


def test_n5_is_lazy(stack, tmp_path):
    folder = tmp_path / "lazy.n5" / "raw"
    writer = _n5(folder, stack)
    with open_volume(folder) as vol:
        writer[:, :, 5].write(np.full((48, 64), 7, np.uint8)).result()  # slice 5 changes after opening
        assert (vol.data[5].compute() == 7).all()
        np.testing.assert_array_equal(vol.data[:5].compute(), stack[:5])
    with pytest.raises(VolumeError, match="closed"):
        vol.data[0].compute()


def test_n5_pyramid_opens_s0_with_its_levels_and_group_resolution(stack, tmp_path):
    root = tmp_path / "bdv.n5"
    _group(root, {"n5": "2.3.0"})
    _group(root / "setup0", {"scales": [[1, 1, 1], [2, 2, 1]], "pixelResolution": {"dimensions": [8, 8, 40], "unit": "nm"}})
    _n5(root / "setup0" / "s0", stack, compression={"type": "bzip2", "blockSize": 9})  # BigDataViewer's favourite
    _n5(root / "setup0" / "s1", stack[:, ::2, ::2], {"downsamplingFactors": [2, 2, 1]})
    with open_volume(root) as vol:  # s1 is a level of s0's pyramid, not another image
        assert str(vol.path) == str(root) and vol.pixel_size_nm == pytest.approx((40.0, 8.0, 8.0))
        assert [level.shape for level in vol.levels] == [(6, 64, 48), (6, 32, 24)] and vol.levels[0] is vol.data
        np.testing.assert_array_equal(vol.levels[1].compute(), stack[:, ::2, ::2])
    with open_volume(root / "setup0" / "s1") as vol:
        assert vol.pixel_size_nm == pytest.approx((40.0, 16.0, 16.0)) and vol.levels == ()


def test_n5_with_several_images_and_paintera_resolution(stack, tmp_path):
    root = tmp_path / "two.n5"
    _group(root, {"n5": "2.3.0"})
    _n5(root / "volumes" / "raw", stack, {"resolution": [4, 4, 40]})
    _n5(root / "volumes" / "mask", (stack > 100).astype(np.uint8))
    with pytest.raises(AmbiguousDatasetError, match=r"holds 2 images \(volumes/mask .*volumes/raw .*'.*two.n5:/volumes/mask'"):
        open_volume(root)
    with open_volume(root, dataset="volumes/raw") as vol:
        assert str(vol.path) == str(root / "volumes" / "raw") and vol.pixel_size_nm == pytest.approx((40.0, 4.0, 4.0))
        np.testing.assert_array_equal(vol.data.compute(), stack)


def test_n5_without_tensorstore_names_the_extra(stack, tmp_path, monkeypatch):
    folder = tmp_path / "x.n5" / "raw"
    _n5(folder, stack)
    monkeypatch.setitem(sys.modules, "tensorstore", None)  # as if not installed
    with pytest.raises(MissingPackageError, match=r"reading N5 needs the optional package tensorstore: pip install 'napari-emsr\[n5\]'"):
        open_volume(folder)


# -- OME-Zarr pyramids, shared helpers --------------------------------------------------------------
def _ome_zarr_pyramid(path, stack, levels=3):
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for k in range(levels):
        step = 2**k
        root.create_array(str(k), data=stack[:, ::step, ::step], chunks=(1, 32, 32))
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [40.0, 4.0 * step, 4.0 * step]}]})
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    return path


def test_ome_zarr_pyramid_gives_level_0_for_compute_and_all_levels(stack, tmp_path):
    path = _ome_zarr_pyramid(tmp_path / "pyramid.ome.zarr", stack)
    with open_volume(path) as vol:
        assert vol.shape == stack.shape and vol.pixel_size_nm == pytest.approx((40.0, 4.0, 4.0))
        assert [level.shape for level in vol.levels] == [(6, 64, 48), (6, 32, 24), (6, 16, 12)]
        np.testing.assert_array_equal(vol.data.compute(), stack)
        np.testing.assert_array_equal(vol.levels[2].compute(), stack[:, ::4, ::4])
    for level in (path / "1", f"{path}:/1"):  # one level opened as an array: no pyramid
        with open_volume(level) as vol:
            assert vol.levels == () and vol.pixel_size_nm == pytest.approx((40.0, 8.0, 8.0))
            np.testing.assert_array_equal(vol.data.compute(), stack[:, ::2, ::2])


def test_zarr_group_of_arrays_is_chosen_like_hdf5(stack, tmp_path):
    path = tmp_path / "plain.zarr"
    root = zarr.open_group(str(path), mode="w")
    root.create_array("raw", data=stack, chunks=(1, 64, 48))
    root.create_array("smooth", data=stack // 2, chunks=(1, 64, 48))
    with pytest.raises(AmbiguousDatasetError, match=r"holds 2 images \(raw \(6, 64, 48\) uint8, smooth .*'.*plain.zarr:/raw'"):
        open_volume(path)
    with open_volume(f"{path}:/smooth") as vol:
        np.testing.assert_array_equal(vol.data.compute(), stack // 2)
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, stack)
    with pytest.raises(VolumeError, match="this file holds no datasets to choose from"):
        open_volume(tif, dataset="raw")


def test_split_dataset_and_read_chunks(tmp_path):
    real = tmp_path / "odd:name.h5"
    real.write_bytes(b"")
    assert split_dataset(str(real)) == (str(real), None)  # an existing path is never split
    assert split_dataset(f"{real}:/a/b/") == (str(real), "a/b")
    assert split_dataset("/missing/x.H5:/raw") == ("/missing/x.H5", "raw")
    assert split_dataset("scan/*.png") == ("scan/*.png", None)
    assert read_chunks((100, 1000, 1000), (1, 64, 64), 1, target=2**20) == (1, 1000, 1000)  # x, then y first
    assert read_chunks((100, 64, 64), (8, 32, 32), 1, target=2**18) == (64, 64, 64)  # multiples of 8 in z
    assert read_chunks((10, 20, 30), None, 4) == (10, 20, 30)


# -- the command line on the new formats ------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_model(sensitive_model(2), tmp_path_factory.mktemp("model") / "tiny.safetensors", input_pixel_size_nm=10.0)


@pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")
@pytest.mark.filterwarnings("ignore::napari_emsr.predict.PixelSizeWarning")
@pytest.mark.parametrize("kind", ["mrc", "hdf5"])
def test_emsr_predict_on_mrc_and_hdf5(stack, tmp_path, model, capsys, kind):
    lr = stack[:3, :40, :32]
    if kind == "mrc":
        source = str(_mrc(tmp_path / "lr.mrc", lr.astype(np.int16), voxel_size=(100.0, 100.0, 300.0)))
    else:
        with h5py.File(tmp_path / "lr.h5", "w") as f:
            f.create_dataset("volumes/raw", data=lr, chunks=(1, 40, 32)).attrs["resolution"] = [30, 10, 10]
            f.create_dataset("volumes/other", data=lr)
        source = f"{tmp_path / 'lr.h5'}:/volumes/raw"
    out = tmp_path / "sr.ome.tif"
    code = main(["predict", source, str(out), "--model", str(model), "--tile", "16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "3 slices" in captured.out and "(3, 80, 64)" in captured.out
    with open_volume(out) as vol:
        assert vol.pixel_size_nm[1:] == pytest.approx((5.0, 5.0))  # 10 nm in the file, x2
        expected = super_resolve(lr.astype(np.int16) if kind == "mrc" else lr, model, tile=16)
        assert np.abs(vol.data.compute().astype(int) - expected.astype(int)).max() <= 1


def test_emsr_predict_names_the_choice_for_an_ambiguous_hdf5(cremi, tmp_path, model, capsys):
    assert main(["predict", str(cremi), str(tmp_path / "sr.ome.tif"), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "holds 2 images" in err and f"'{cremi}:/volumes/labels/neuron_ids'" in err
    assert not (tmp_path / "sr.ome.tif").exists()


def test_emsr_evaluate_reads_mrc_and_hdf5(stack, tmp_path, capsys):
    reference = _mrc(tmp_path / "ref.mrc", stack, voxel_size=(100.0, 100.0, 100.0))  # uint8 -> mode 6
    with h5py.File(tmp_path / "pred.h5", "w") as f:
        f.create_dataset("prediction", data=np.clip(stack.astype(int) + 3, 0, 255).astype(np.uint16))
    assert main(["evaluate", str(reference), str(tmp_path / "pred.h5")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "PSNR (dB)" in out and "10 nm" in out
