"""Slice-by-slice writers: OME-TIFF and resumable OME-Zarr, atomic."""

import numpy as np
import pytest
import tifffile
import zarr

from napari_emsr import open_volume
from napari_emsr.io import OmeTiffWriter, OmeZarrWriter, ngff_transforms, output_kind, partial_path


@pytest.fixture
def planes(rng):
    return (rng.random((3, 40, 36)) * 65535).astype(np.uint16)


def test_output_kind():
    assert output_kind("a/b.ome.tif") == output_kind("x.TIFF") == "ome-tiff"
    assert output_kind("a.ome.zarr") == output_kind("b.zarr") == "ome-zarr"
    with pytest.raises(ValueError, match="must end in"):
        output_kind("out.png")


def test_ome_tiff_round_trip(planes, tmp_path):
    path = tmp_path / "o.ome.tif"
    writer = OmeTiffWriter(path, shape=planes.shape, dtype=planes.dtype, pixel_size_nm=(40.0, 3.5, 2.5))
    writer.open()
    for z, plane in enumerate(planes):
        assert not path.exists()  # only the temporary file exists while writing
        writer.write(z, plane)
    assert writer.commit() == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ome.tif"]
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.pages) == 3 and tif.series[0].axes == "ZYX"
    with open_volume(path) as vol:
        assert vol.pixel_size_nm == pytest.approx((40.0, 3.5, 2.5))
        np.testing.assert_array_equal(vol.data.compute(), planes)


def test_ome_tiff_in_order_only_and_abort_leaves_nothing(planes, tmp_path):
    writer = OmeTiffWriter(tmp_path / "o.tif", shape=planes.shape, dtype=planes.dtype)
    writer.open()
    writer.write(0, planes[0])
    with pytest.raises(ValueError, match="in order"):
        writer.write(2, planes[2])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(planes, tmp_path):
    (tmp_path / "o.ome.tif").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite"):
        OmeTiffWriter(tmp_path / "o.ome.tif", shape=planes.shape, dtype=planes.dtype)
    with pytest.raises(FileNotFoundError, match="create the output folder"):
        OmeTiffWriter(tmp_path / "missing" / "o.ome.tif", shape=planes.shape, dtype=planes.dtype)


def _zarr_writer(path, shape, **kw):
    axes, transforms = ngff_transforms((40.0, 9.0, 9.0), 3, scale=3)
    multiscale = {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
    return OmeZarrWriter(path, shape=shape, dtype=np.uint16, multiscale=multiscale, fingerprint={"run": 1}, chunk=16, **kw)


def test_ome_zarr_progress_resume_and_commit(planes, tmp_path):
    path = tmp_path / "o.ome.zarr"
    writer = _zarr_writer(path, planes.shape)
    assert not writer.open().any()
    writer.write(1, planes[1])
    writer.abort()  # an interrupted run: the partial store is kept, the final name is not used
    assert not path.exists() and partial_path(path).is_dir()
    assert partial_path(path).name == ".o.ome.zarr.partial"
    with pytest.raises(FileExistsError, match="resume"):
        _zarr_writer(path, planes.shape)
    resumed = _zarr_writer(path, planes.shape, resume=True)
    np.testing.assert_array_equal(resumed.open(), [False, True, False])
    with pytest.raises(RuntimeError, match="2 slices are not done"):
        resumed.commit()
    resumed.write(0, planes[0])
    resumed.write(2, planes[2])
    resumed.commit()
    assert path.is_dir() and not partial_path(path).exists()
    group = zarr.open_group(str(path), mode="r")
    assert group["0"].chunks == (1, 16, 16) and group.attrs["napari_emsr"]["complete"] is True
    ms = group.attrs["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [40.0, 3.0, 3.0]
    assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == pytest.approx([0.0, -3.0, -3.0])
    with open_volume(path) as vol:
        assert vol.pixel_size_nm == pytest.approx((40.0, 3.0, 3.0))
        np.testing.assert_array_equal(vol.data.compute(), planes)
    # resuming a finished run has nothing to do
    done = _zarr_writer(path, planes.shape, resume=True)
    assert done.already_complete and done.open().all()


def test_resume_with_other_settings_is_refused(planes, tmp_path):
    path = tmp_path / "o.ome.zarr"
    writer = _zarr_writer(path, planes.shape)
    writer.open()
    with pytest.raises(ValueError, match=r"other settings \(run: was 1, now 2\)"):
        OmeZarrWriter(path, shape=planes.shape, dtype=np.uint16, multiscale={}, fingerprint={"run": 2}, resume=True)
    fresh = OmeZarrWriter(path, shape=planes.shape, dtype=np.uint16, multiscale={}, fingerprint={"run": 2}, overwrite=True)
    assert not fresh.open().any()  # --overwrite starts again


def test_ngff_translation_centres_output_pixels():
    axes, (scale, shift) = ngff_transforms((None, 10.0, 10.0), 3, scale=2, offset=(4, 6))
    assert [a.get("unit") for a in axes] == [None, "nanometer", "nanometer"]
    assert scale["scale"] == [1.0, 5.0, 5.0]
    # output pixel 0 is centred a quarter of an input pixel before input pixel 0's centre
    assert shift["translation"] == pytest.approx([0.0, 40 - 2.5, 60 - 2.5])
