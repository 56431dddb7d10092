"""Lazy readers: TIFF / OME-TIFF / ImageJ TIFF, slices (folder, glob), Zarr / OME-Zarr; pixel sizes."""

import shutil

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_emsr import open_volume
from napari_emsr.io import VolumeError, natural_sort_key


@pytest.fixture(scope="module")
def stack(data_dir):
    """Six real validation slices, cropped (z, y, x) = (6, 96, 80), uint8."""
    from skimage.io import imread

    files = sorted((data_dir / "validation_sample").glob("*.png"))[:6]
    return np.stack([imread(f)[:96, 10:90] for f in files])


def test_natural_sort_key():
    names = ["s10.png", "s2.png", "s1.png", "S03.png", "s2b.png", "a.png"]
    assert sorted(names, key=natural_sort_key) == ["a.png", "s1.png", "s2.png", "s2b.png", "S03.png", "s10.png"]


def test_ome_tiff_is_read_lazily_with_pixel_size(stack, tmp_path):
    path = tmp_path / "v.ome.tif"
    meta = {"axes": "ZYX", "PhysicalSizeX": 0.01, "PhysicalSizeY": 0.012, "PhysicalSizeZ": 40, "PhysicalSizeZUnit": "nm"}
    tifffile.imwrite(path, stack, ome=True, metadata=meta)
    with open_volume(path) as vol:
        assert isinstance(vol.data, da.Array) and vol.format == "ome-tiff"
        assert vol.data.chunks == ((1,) * 6, (96,), (80,))  # one page per chunk, through the zarr store
        assert vol.pixel_size_nm == pytest.approx((40.0, 12.0, 10.0))
        np.testing.assert_array_equal(vol.data[3].compute(), stack[3])
        np.testing.assert_array_equal(vol.data.compute(), stack)
    with pytest.raises(Exception):  # noqa: B017 (closed: whatever the store raises, the handle is released)
        vol.data[0].compute()


def test_ome_tiff_singleton_axes_are_dropped(stack, tmp_path):
    path = tmp_path / "t.ome.tif"
    tifffile.imwrite(path, stack[:, None, None], ome=True, metadata={"axes": "ZTCYX"})
    with open_volume(path) as vol:
        assert vol.shape == (6, 96, 80)
        np.testing.assert_array_equal(vol.data.compute(), stack)


def test_imagej_tiff_pixel_size(stack, tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 0.008, 1 / 0.008), metadata={"spacing": 0.03, "unit": "um", "axes": "ZYX"})
    with open_volume(path) as vol:
        assert vol.format == "imagej-tiff"
        assert vol.pixel_size_nm == pytest.approx((30.0, 8.0, 8.0))
        np.testing.assert_array_equal(vol.data.compute(), stack)


def test_resolution_tags(stack, tmp_path):
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, stack[0], resolution=(1e7 / 5.0, 1e7 / 4.0), resolutionunit="CENTIMETER")
    with open_volume(path) as vol:
        assert vol.shape == (96, 80) and vol.format == "tiff"
        assert vol.pixel_size_nm == pytest.approx((4.0, 5.0))  # (y, x)
    screen = tmp_path / "screen.tif"
    tifffile.imwrite(screen, stack[0], resolution=(72, 72), resolutionunit="INCH")  # a screen's dpi, not a calibration
    with open_volume(screen) as vol:
        assert vol.pixel_size_nm is None


def test_given_pixel_size_wins(stack, tmp_path):
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, stack, resolution=(1e7 / 5.0, 1e7 / 5.0), resolutionunit="CENTIMETER")
    with open_volume(path, pixel_size=9) as vol:
        assert vol.pixel_size_nm[1:] == (9.0, 9.0)
    with open_volume(path, pixel_size=(50, 9, 8)) as vol:
        assert vol.pixel_size_nm == (50.0, 9.0, 8.0)
    with pytest.raises(ValueError, match="one number"):
        open_volume(path, pixel_size=(1, 2, 3, 4))
    with pytest.raises(ValueError, match="positive"):
        open_volume(path, pixel_size=-3)


def test_folder_of_pngs_in_natural_order(data_dir, tmp_path):
    source = sorted((data_dir / "validation_sample").glob("*.png"))[:11]
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, f in enumerate(source):
        shutil.copy(f, folder / f"slice{i}.png")  # slice10 must come after slice9, not after slice1
    (folder / "notes.txt").write_text("not an image")
    with open_volume(folder) as vol:
        assert vol.shape == (11, 520, 520) and vol.dtype == np.uint8 and vol.format == "slices"
        assert vol.data.chunks[0] == (1,) * 11 and vol.pixel_size_nm is None
        from skimage.io import imread

        np.testing.assert_array_equal(vol.data[10].compute(), imread(source[10]))
        np.testing.assert_array_equal(vol.data[2].compute(), imread(source[2]))


def test_glob_of_tiff_slices(stack, tmp_path):
    for i, plane in enumerate(stack):
        tifffile.imwrite(tmp_path / f"z{i}.tif", plane, resolution=(1e7 / 6, 1e7 / 6), resolutionunit="CENTIMETER")
    (tmp_path / "other.png").write_bytes(b"")
    with open_volume(str(tmp_path / "z*.tif")) as vol:
        assert vol.shape == stack.shape and vol.pixel_size_nm == pytest.approx((None, 6.0, 6.0))
        np.testing.assert_array_equal(vol.data.compute(), stack)
    with pytest.raises(FileNotFoundError, match="no file matches"):
        open_volume(str(tmp_path / "nothing*.tif"))


def test_single_png(data_dir):
    with open_volume(sorted((data_dir / "validation_sample").glob("*.png"))[0]) as vol:
        assert vol.shape == (520, 520)


def test_zarr_array(stack, tmp_path):
    path = tmp_path / "raw.zarr"
    zarr.create_array(str(path), shape=stack.shape, chunks=(2, 48, 80), dtype=stack.dtype)[:] = stack
    with open_volume(path) as vol:
        assert vol.format == "zarr" and vol.pixel_size_nm is None
        assert vol.data.chunks[0] == (2, 2, 2)
        np.testing.assert_array_equal(vol.data.compute(), stack)


def _ome_zarr(path, stack, version):
    axes = [{"name": "z", "type": "space", "unit": "nanometer"}, {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]  # fmt: skip
    datasets = [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [25.0, 0.004, 0.005]}]}]
    multiscale = {"axes": axes, "datasets": datasets}
    if version == "0.4":
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    group.create_array("s0", shape=stack.shape, chunks=(1, 96, 80), dtype=stack.dtype)[:] = stack


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_multiscales(stack, tmp_path, version):
    path = tmp_path / "v.ome.zarr"
    _ome_zarr(path, stack, version)
    with open_volume(path) as vol:
        assert vol.format == "ome-zarr"
        assert vol.pixel_size_nm == pytest.approx((25.0, 4.0, 5.0))
        np.testing.assert_array_equal(vol.data.compute(), stack)
    with open_volume(path / "s0") as vol:  # the dataset itself: sizes from its parent's multiscales
        assert vol.pixel_size_nm == pytest.approx((25.0, 4.0, 5.0))


def test_ome_zarr_channel_axis(stack, tmp_path):
    path = tmp_path / "c.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    axes = [{"name": "c", "type": "channel"}, {"name": "z", "type": "space", "unit": "nanometer"},
            {"name": "y", "type": "space", "unit": "nanometer"}, {"name": "x", "type": "space", "unit": "nanometer"}]  # fmt: skip
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 30, 10, 10]}]}]}]  # fmt: skip
    group.create_array("0", shape=(1, *stack.shape), dtype=stack.dtype)[:] = stack[None]
    with open_volume(path) as vol:
        assert vol.shape == stack.shape and vol.pixel_size_nm == (30.0, 10.0, 10.0)
    group.create_array("1", shape=(2, *stack.shape), dtype=stack.dtype)
    group.attrs["multiscales"] = [{**group.attrs["multiscales"][0], "datasets": [{"path": "1"}]}]
    with pytest.raises(VolumeError, match="2 colour channels"):
        open_volume(path)


# -- refusals ---------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_volume(tmp_path / "nope.tif")


def test_rgb_tiff_and_png_are_refused(stack, tmp_path):
    rgb = np.repeat(stack[0][..., None], 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    with pytest.raises(VolumeError, match="colour channels"):
        open_volume(tmp_path / "rgb.tif")
    from PIL import Image

    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(VolumeError, match="RGB PNG.*grey"):
        open_volume(tmp_path / "rgb.png")


def test_4d_is_refused(stack, tmp_path):
    tifffile.imwrite(tmp_path / "t.ome.tif", np.stack([stack, stack]), ome=True, metadata={"axes": "TZYX"})
    with pytest.raises(VolumeError, match="4 non-trivial dimensions"):
        open_volume(tmp_path / "t.ome.tif")


def test_empty_and_unreadable(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match="no PNG or TIFF slices"):
        open_volume(tmp_path / "empty")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(VolumeError, match="not a readable TIFF"):
        open_volume(tmp_path / "bad.tif")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(VolumeError, match="not a readable PNG"):
        open_volume(tmp_path / "bad.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(VolumeError, match="unsupported file type"):
        open_volume(tmp_path / "notes.txt")
    zarr.create_array(str(tmp_path / "e.zarr"), shape=(0, 10, 10), dtype="uint8")
    with pytest.raises(VolumeError, match="empty"):
        open_volume(tmp_path / "e.zarr")


def test_mismatched_slices_are_refused(stack, tmp_path):
    tifffile.imwrite(tmp_path / "a1.tif", stack[0])
    tifffile.imwrite(tmp_path / "a2.tif", stack[1, :50])
    with pytest.raises(VolumeError, match="a2.tif: slice has shape"):
        open_volume(tmp_path)


def test_codec_without_imagecodecs_is_explained(stack, tmp_path):
    from PIL import Image

    Image.fromarray(stack[0]).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        with pytest.raises(VolumeError, match="LZW.*imagecodecs"):
            open_volume(tmp_path / "lzw.tif")
    else:  # with imagecodecs installed the file simply reads
        with open_volume(tmp_path / "lzw.tif") as vol:
            np.testing.assert_array_equal(vol.data.compute(), stack[0])


# -- forged, truncated and corrupt files --------------------------------------------------------
def forged_tiff(path, *, width=100_000, height=100_000, description=None, data=bytes(16)):
    """A hand-made little-endian TIFF: one uncompressed uint8 page whose header claims width x height
    pixels (one strip of ``len(data)`` bytes), with an optional ImageDescription (OME-XML, tifffile's
    'shaped' JSON, ...) claiming more pages."""
    import struct

    text = (description + "\0").encode() if description else b""
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(data))]  # fmt: skip
    count = len(tags) + 1 + bool(text)
    text_at = 8 + 2 + 12 * count + 4
    tags.append((273, 4, 1, text_at + len(text)))  # the strip, after the description
    if text:
        tags.append((270, 2, len(text), text_at))
    ifd = struct.pack("<H", count)
    for tag, kind, n, value in sorted(tags):
        ifd += struct.pack("<HHIHH", tag, kind, n, value, 0) if kind == 3 else struct.pack("<HHII", tag, kind, n, value)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + text + data)
    return path


OME_100K = (
    '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="100000" SizeY="100000" '
    'SizeZ="100000" SizeC="1" SizeT="1"><TiffData IFD="0" PlaneCount="100000"/></Pixels></Image></OME>'
)


@pytest.mark.parametrize(
    "description, shape",
    [(OME_100K, (100000, 100000, 100000)), ('{"shape": [100000, 100000, 100000]}', (100000, 100000, 100000)),
     (None, (100000, 100000))],  # fmt: skip
    ids=["ome-100000-pages", "shaped-100000-pages", "one-huge-page"],
)
def test_a_tiff_claiming_an_enormous_image_is_refused_before_reading(tmp_path, description, shape):
    path = forged_tiff(tmp_path / "forged.tif", description=description)
    with tifffile.TiffFile(path) as tif:  # what the header claims: tifffile believes it
        assert tif.series[0].shape == shape
    with pytest.raises(VolumeError) as caught:
        open_volume(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: the TIFF header claims an image of shape {shape} uint8")
    assert "the file holds only" in message and "truncated or its header is corrupt" in message


@pytest.mark.parametrize(
    "options", [{}, {"ome": True}, {"compression": "zlib"}, {"compression": "zlib", "ome": True},
                {"compression": "zlib", "tile": (32, 32)}],  # fmt: skip
    ids=["plain", "ome", "zlib", "zlib-ome", "zlib-tiled"],
)
def test_a_truncated_tiff_is_refused_naming_the_file(stack, tmp_path, options):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, stack, **options)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size * 2 // 3)
    with pytest.raises(VolumeError, match=r"truncated") as caught:
        with open_volume(path) as vol:
            vol.data.compute()
    assert str(caught.value).startswith(f"{path}: ")


def test_corrupt_pixel_data_names_the_file_when_read(stack, tmp_path):
    path = tmp_path / "corrupt.tif"
    tifffile.imwrite(path, stack, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        start = int(tif.pages[2].dataoffsets[0])
    raw = bytearray(path.read_bytes())
    raw[start + 10 : start + 200] = bytes(190)  # inside the file: only decoding can notice
    path.write_bytes(bytes(raw))
    with open_volume(path) as vol:
        np.testing.assert_array_equal(vol.data[:2].compute(), stack[:2])  # the intact pages still read
        with pytest.raises(VolumeError, match=r"reading the pixel data failed .*truncated or corrupt") as caught:
            vol.data[2].compute()
    assert str(caught.value).startswith(f"{path}: ")


def test_a_truncated_png_slice_names_the_file(data_dir, tmp_path):
    for f in sorted((data_dir / "validation_sample").glob("*.png"))[:3]:
        shutil.copy(f, tmp_path / f.name)
    broken = sorted(tmp_path.glob("*.png"))[1]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    with open_volume(tmp_path) as vol:
        with pytest.raises(VolumeError, match="reading the slice failed") as caught:
            vol.data.compute()
    assert str(caught.value).startswith(f"{broken}: ")


@pytest.mark.parametrize("shape", [(10,), ()], ids=["1d", "0d"])
def test_a_zarr_of_fewer_than_two_dimensions_is_refused(tmp_path, shape):
    path = tmp_path / "line.zarr"
    zarr.create_array(str(path), shape=shape, dtype="uint8")
    with pytest.raises(VolumeError, match=r"the input must be a 2D image or a 3D \(z, y, x\) stack") as caught:
        open_volume(path)
    assert str(caught.value).startswith(f"{path}: has shape {shape}")
