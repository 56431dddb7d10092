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


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process now
    return child.pid


def test_temporaries_of_killed_runs_are_removed_those_of_live_runs_kept(planes, tmp_path):
    """A run killed outright (SIGKILL) cannot clean up: the next run for the same output does."""
    import subprocess
    import sys

    from napari_emsr._atomic import temporary_sibling

    target = tmp_path / "o.ome.tif"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = temporary_sibling(target)  # .o.ome.tif.<pid>-<host>-<id>.partial
        dead = mine.with_name(mine.name.replace(f".{__import__('os').getpid()}-", f".{_dead_pid()}-"))
        running = mine.with_name(mine.name.replace(f".{__import__('os').getpid()}-", f".{live.pid}-"))
        old_style = tmp_path / f".o.ome.tif.{_dead_pid()}-0123abcd.partial"  # an older version's name, no host
        other_host = tmp_path / f".o.ome.tif.{_dead_pid()}-ffffff-0123abcd.partial"
        other_target = tmp_path / f".p.ome.tif.{_dead_pid()}-0123abcd.partial"
        for path in (dead, running, old_style, other_host, other_target):
            path.write_bytes(b"x" * 1000)
        writer = OmeTiffWriter(target, shape=planes.shape, dtype=planes.dtype)
        with pytest.warns(UserWarning, match="temporary file of an earlier run for o.ome.tif that was killed") as said:
            writer.open()
        assert sorted(str(w.message).split()[1].rstrip(",") for w in said) == sorted([dead.name, old_style.name])
        for z, plane in enumerate(planes):
            writer.write(z, plane)
        writer.commit()
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted(["o.ome.tif", running.name, other_host.name, other_target.name])
    finally:
        live.kill()
        live.wait()


def test_a_file_size_limit_mid_write_leaves_nothing(planes, tmp_path):
    """A real EFBIG (RLIMIT_FSIZE, what a full disk looks like to one file): abort removes the temporary."""
    import resource

    from napari_emsr.io.writers import OutputSpaceError, space_error

    big = np.repeat(planes, 4, axis=1)  # 3 pages of 11.25 KiB
    writer = OmeTiffWriter(tmp_path / "o.ome.tif", shape=big.shape, dtype=big.dtype)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))  # Python ignores SIGXFSZ: writes fail with EFBIG
    try:
        writer.open()
        with pytest.raises(OSError) as caught:
            for z, plane in enumerate(big):
                writer.write(z, plane)
            writer.commit()
        writer.abort()
        error = space_error(caught.value, writer)  # numpy reports the short write without an errno
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(tmp_path.iterdir()) == []  # neither the temporary nor anything under the final name
    assert isinstance(error, OutputSpaceError) and error.needed >= big.nbytes and error.kept is None
    assert "file-size limit" in str(error) and "nothing was left behind" in str(error)


def test_a_zarr_done_flag_damaged_by_a_full_disk_counts_as_not_done(planes, tmp_path):
    path = tmp_path / "o.ome.zarr"
    writer = _zarr_writer(path, planes.shape)
    writer.open()
    writer.write(0, planes[0])
    writer.write(1, planes[1])
    (partial_path(path) / "emsr_done" / "1").write_bytes(b"\x02")  # a truncated chunk
    resumed = _zarr_writer(path, planes.shape, resume=True)
    np.testing.assert_array_equal(resumed.open(), [True, False, False])
    resumed.write(1, planes[1])
    resumed.write(2, planes[2])
    resumed.commit()
    with open_volume(path) as vol:
        np.testing.assert_array_equal(vol.data.compute(), planes)


def test_a_cancelled_zarr_with_no_slice_done_leaves_nothing(planes, tmp_path):
    path = tmp_path / "o.ome.zarr"
    writer = _zarr_writer(path, planes.shape)
    writer.open()
    writer.abort()  # nothing to resume: a plain rerun must not be refused
    assert list(tmp_path.iterdir()) == []
    _zarr_writer(path, planes.shape).open()


def test_chunk_temporaries_of_interrupted_zarr_writes_do_not_reach_the_output(planes, tmp_path):
    """zarr writes a chunk to NAME.<uuid>.partial, then renames it: a kill in between leaves the file."""
    path = tmp_path / "o.ome.zarr"
    writer = _zarr_writer(path, planes.shape)
    writer.open()
    writer.write(0, planes[0])
    stray = partial_path(path) / "0" / "1" / "0" / "0.0123456789abcdef0123456789abcdef.partial"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"half a chunk")
    writer.write(1, planes[1])
    writer.write(2, planes[2])
    writer.commit()
    assert [p for p in path.rglob("*") if p.name.endswith(".partial")] == []
    with open_volume(path) as vol:
        np.testing.assert_array_equal(vol.data.compute(), planes)


def test_ngff_multiscale_of_a_layer_and_of_a_super_resolved_output():
    """One builder for both NGFF entries: a layer keeps its translate, an output centres its pixels."""
    from napari_emsr.io import ngff_multiscale

    layer = ngff_multiscale("l.ome.zarr", 3, (40.0, 3.0, 3.0), translate=(0.0, 6.0, 9.0))
    assert layer["version"] == "0.4" and layer["name"] == "l.ome.zarr" and "metadata" not in layer
    scale, shift = layer["datasets"][0]["coordinateTransformations"]
    assert scale["scale"] == [40.0, 3.0, 3.0] and shift["translation"] == [0.0, 6.0, 9.0]
    plain = ngff_multiscale("p.ome.zarr", 2, None)
    assert plain["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 1.0]}]
    assert [a.get("unit") for a in plain["axes"]] == [None, None]
    output = ngff_multiscale("sr", 3, (None, 10.0, 10.0), scale=2, offset=(4, 6), metadata={"scale": 2})
    axes, transforms = ngff_transforms((None, 10.0, 10.0), 3, scale=2, offset=(4, 6))
    assert output["axes"] == axes and output["datasets"][0]["coordinateTransformations"] == transforms
    assert output["metadata"] == {"scale": 2}


@pytest.mark.parametrize("name", ["o.ome.tif", "o.ome.zarr"])
def test_iter_write_is_an_export_job_that_leaves_nothing_when_closed(planes, tmp_path, name):
    from napari_emsr.errors import OutputExistsError
    from napari_emsr.io import WriteTarget, iter_write

    path = tmp_path / name
    events = list(iter_write(planes, path, pixel_size_nm=(40.0, 3.0, 3.0)))
    assert [e.kind for e in events] == ["start", "slice", "slice", "slice", "done"]
    assert {e.job for e in events} == {"export"} and {e.unit for e in events} == {"slice"}
    assert events[0].payload == WriteTarget(path, output_kind(path), (3, 40, 36), "uint16")
    assert [e.payload for e in events[1:-1]] == [0, 1, 2] and [e.done for e in events] == [0, 1, 2, 3, 3]
    assert events[2].message == "slice 2/3" and events[-1].payload == path and events[-1].fraction == 1.0
    with open_volume(path) as vol:
        np.testing.assert_array_equal(np.asarray(vol.data), planes)
        assert vol.pixel_size_nm == pytest.approx((40.0, 3.0, 3.0))
    with pytest.raises(OutputExistsError, match="exists: pass overwrite=True to replace it"):
        next(iter_write(planes, path))
    again = iter_write(planes[::-1].copy(), path, overwrite=True)
    for event in again:
        if event.kind == "slice":
            break
    again.close()  # cancelled after one slice: the old output stays, nothing else is left
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    with open_volume(path) as vol:
        np.testing.assert_array_equal(np.asarray(vol.data), planes)


def test_pyramid_levels_halve_until_small():
    from napari_emsr.io.writers import pyramid_shapes

    assert pyramid_shapes((5, 512, 300)) == [(5, 512, 300)]
    assert pyramid_shapes((5, 2100, 1031)) == [(5, 2100, 1031), (5, 1050, 516), (5, 525, 258), (5, 263, 129)]
    assert pyramid_shapes((1031, 600)) == [(1031, 600), (516, 300), (258, 150)]  # 516 > 512: one more


def test_halve_is_a_block_mean_that_keeps_dtype_and_borders():
    from napari_emsr.io.writers import halve

    plane = np.array([[0, 2, 10], [4, 6, 10], [100, 100, 7]], dtype=np.uint8)
    np.testing.assert_array_equal(halve(plane), np.array([[3, 10], [100, 7]], dtype=np.uint8))  # odd edges replicated
    assert halve(plane).dtype == np.uint8
    flat = np.full((5, 7), 0.25, np.float32)
    np.testing.assert_allclose(halve(flat), np.full((3, 4), 0.25))  # a flat image stays flat, up to its border


def test_ome_zarr_pyramid_written_with_each_slice_and_resumable(rng, tmp_path):
    from napari_emsr.io.writers import halve, ngff_multiscale

    planes = (rng.random((3, 1100, 600)) * 255).astype(np.uint8)
    multiscale = ngff_multiscale("o", 3, (40.0, 9.0, 9.0), scale=3)
    path = tmp_path / "o.ome.zarr"

    def writer(**more):
        return OmeZarrWriter(path, shape=planes.shape, dtype=np.uint8, multiscale=multiscale,
                             fingerprint={"run": 1}, chunk=256, **more)  # fmt: skip

    first = writer()
    first.open()
    first.write(2, planes[2])  # out of order, as a preview slice comes first
    first.abort()
    with pytest.raises(ValueError, match="pyramid_levels: was 3, now 1"):
        writer(resume=True, pyramid=False)  # a store keeps the levels it was started with
    resumed = writer(resume=True)
    np.testing.assert_array_equal(resumed.open(), [False, False, True])
    resumed.write(0, planes[0])
    resumed.write(1, planes[1])
    resumed.commit()
    group = zarr.open_group(str(path), mode="r")
    datasets = group.attrs["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["0", "1", "2"]
    assert [group[d["path"]].shape for d in datasets] == [(3, 1100, 600), (3, 550, 300), (3, 275, 150)]
    for level, d in enumerate(datasets):
        scale, shift = (t[key] for t, key in zip(d["coordinateTransformations"], ("scale", "translation"), strict=True))
        assert scale == pytest.approx([40.0, 3.0 * 2**level, 3.0 * 2**level])
        # a level-l pixel centre sits at the centre of the 2**l x 2**l level-0 pixels it averages
        assert shift[1:] == pytest.approx([-3.0 + (2**level - 1) / 2 * 3.0] * 2)
    expected = planes
    for level in (1, 2):
        expected = np.stack([halve(p) for p in expected])
        np.testing.assert_array_equal(group[str(level)][:], expected)
    with open_volume(path) as vol:  # compute reads level 0
        assert vol.data.shape == planes.shape and vol.pixel_size_nm == pytest.approx((40.0, 3.0, 3.0))
    flat = tmp_path / "flat.ome.zarr"
    plain = OmeZarrWriter(flat, shape=planes.shape, dtype=np.uint8, multiscale=multiscale, fingerprint={}, pyramid=False)
    plain.open()
    for z in range(3):
        plain.write(z, planes[z])
    plain.commit()
    assert len(zarr.open_group(str(flat), mode="r").attrs["multiscales"][0]["datasets"]) == 1
