"""Prediction into files: atomic writes, cancellation, resume, and the per-chunk tasks (dask)."""

import pickle

import dask
import numpy as np
import pytest
import tifffile

from napari_emsr import iter_super_resolve, open_volume, save_model, super_resolve
from napari_emsr.errors import OutputExistsError, PartialOutputError
from napari_emsr.io import partial_path
from napari_emsr.predict import prepare_tasks, run_task

from ._predict_models import sensitive_model

pytestmark = pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")


@pytest.fixture(scope="module")
def stack(data_dir):
    from skimage.io import imread

    files = sorted((data_dir / "validation_sample").glob("*.png"))[:5]
    return np.stack([imread(f)[200:300, 150:240] for f in files])  # (5, 100, 90) uint8


@pytest.fixture(scope="module")
def model():
    return sensitive_model(2)


@pytest.fixture
def input_tif(stack, tmp_path):
    path = tmp_path / "in" / "lr.ome.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, stack, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.02, "PhysicalSizeY": 0.02})
    return path


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _advance_to_slice(events, count):
    """Consume events until `count` slices are finished; returns the last event."""
    for event in events:
        if event.kind == "slice" and event.payload.slices_done == count:
            return event
    raise AssertionError("the run ended early")


def test_ome_tiff_output_from_a_lazy_tiff(input_tif, out_dir, stack, model):
    out = super_resolve(input_tif, model, output=out_dir / "sr.ome.tif", tile=16)
    assert out == out_dir / "sr.ome.tif"
    with open_volume(out) as vol:
        assert vol.shape == (5, 200, 180) and vol.dtype == np.uint8
        assert vol.pixel_size_nm == pytest.approx((None, 10.0, 10.0))  # input 20 nm, x2
        np.testing.assert_array_equal(vol.data.compute(), super_resolve(stack, model, tile=16))


@pytest.mark.parametrize("name", ["sr.ome.tif", "sr.ome.zarr"])
def test_cancelling_leaves_no_output(input_tif, out_dir, model, name):
    events = iter_super_resolve(input_tif, model, output=out_dir / name, tile=16)
    _advance_to_slice(events, 2)
    events.close()  # e.g. the GUI's cancel button, between two forward passes
    assert not (out_dir / name).exists()
    leftovers = sorted(p.name for p in out_dir.iterdir())
    if name.endswith(".tif"):
        assert leftovers == []
    else:  # kept for --resume, under a hidden name, marked incomplete
        assert leftovers == [f".{name}.partial"]
        import zarr

        group = zarr.open_group(str(out_dir / leftovers[0]), mode="r")
        assert group.attrs["napari_emsr"]["complete"] is False
        assert group["emsr_done"][:].tolist() == [True, True, False, False, False]


def test_resume_gives_the_same_result(input_tif, out_dir, stack, model):
    target = out_dir / "sr.ome.zarr"
    events = iter_super_resolve(input_tif, model, output=target, tile=16)
    _advance_to_slice(events, 3)
    events.close()
    with pytest.raises(PartialOutputError, match="pass resume=True to continue it, or pass overwrite=True") as caught:
        super_resolve(input_tif, model, output=target, tile=16)
    assert isinstance(caught.value, FileExistsError) and {h.option for h in caught.value.hints} == {"resume", "overwrite"}
    with pytest.raises(ValueError, match="other settings"):
        super_resolve(input_tif, model, output=target, tile=16, overlap=8, resume=True)
    events = list(iter_super_resolve(input_tif, model, output=target, tile=16, resume=True))
    assert events[0].payload.slices_reused == 3 and [e.payload.index for e in events if e.kind == "slice"] == [3, 4]
    assert events[-1].payload == target and not partial_path(target).exists()
    with open_volume(target) as vol:
        np.testing.assert_array_equal(vol.data.compute(), super_resolve(stack, model, tile=16))


def test_a_failing_run_leaves_no_file(stack, out_dir, model):
    bad = np.concatenate([stack, stack, stack[:2]]).astype(np.float32)  # 12 slices
    bad[1, 5, 5] = np.nan  # slice 1 is not among the 8 slices sampled up front: found after slice 0 is written
    with pytest.raises(ValueError, match="slice 1 contains"):
        super_resolve(bad, model, output=out_dir / "sr.ome.tif")
    assert list(out_dir.iterdir()) == []


def test_overwrite_replaces_only_when_complete(input_tif, out_dir, model):
    target = out_dir / "sr.ome.tif"
    target.write_bytes(b"previous result")
    with pytest.raises(OutputExistsError, match="exists: pass overwrite=True to replace it"):
        super_resolve(input_tif, model, output=target)
    events = iter_super_resolve(input_tif, model, output=target, overwrite=True, tile=16)
    _advance_to_slice(events, 1)
    events.close()
    assert target.read_bytes() == b"previous result"  # a cancelled overwrite keeps the old file
    super_resolve(input_tif, model, output=target, overwrite=True)
    assert tifffile.TiffFile(target).is_ome


def test_output_cannot_be_the_input_nor_tiff_resume(input_tif, model):
    with pytest.raises(ValueError, match="is the input"):
        super_resolve(input_tif, model, output=input_tif, overwrite=True)
    with pytest.raises(ValueError, match="only OME-Zarr outputs can be resumed"):
        super_resolve(input_tif, model, output=input_tif.with_name("x.ome.tif"), resume=True)


def test_chunks_run_as_independent_dask_tasks(input_tif, out_dir, stack, model, tmp_path):
    """The per-chunk work is a plain function of small picklable tasks (what dask.distributed needs)."""
    model_file = save_model(model, tmp_path / "m.safetensors")
    target = out_dir / "sr.ome.zarr"
    tasks, writer = prepare_tasks(str(input_tif), str(model_file), target, tile=16)
    assert [t.slices for t in tasks] == [(0,), (1,), (2,), (3,), (4,)]
    assert len(pickle.dumps(tasks)) < 20_000  # paths, not data or weights
    first = [dask.delayed(run_task)(t) for t in tasks[:2]]
    assert sum(dask.compute(*first, scheduler="threads")) == 2
    # an interrupted distributed run: only what is left becomes tasks again
    tasks, writer = prepare_tasks(str(input_tif), str(model_file), target, tile=16, resume=True)
    assert [t.slices for t in tasks] == [(2,), (3,), (4,)]
    dask.compute(*[dask.delayed(run_task)(t) for t in reversed(tasks)], scheduler="threads")
    writer.commit()
    with open_volume(target) as vol:
        np.testing.assert_array_equal(vol.data.compute(), super_resolve(stack, model, tile=16))


def test_resume_refuses_an_input_whose_content_changed(input_tif, out_dir, stack, model, tmp_path):
    """Same path, shape and dtype, other pixels: resuming would mix two inputs in one output."""
    from napari_emsr.io.writers import ResumeError

    target = out_dir / "sr.ome.zarr"
    events = iter_super_resolve(input_tif, model, output=target, tile=16)
    _advance_to_slice(events, 2)
    events.close()
    changed = stack.copy()
    changed[4] = 255 - changed[4]  # only the last slice, which the interrupted run never read for output
    meta = {"axes": "ZYX", "PhysicalSizeX": 0.02, "PhysicalSizeY": 0.02}
    tifffile.imwrite(input_tif, changed, ome=True, metadata=meta)  # same path, shape and dtype
    with pytest.raises(ResumeError, match=r"the input .*lr.ome.tif has changed since this partial result") as caught:
        super_resolve(input_tif, model, output=target, tile=16, resume=True)
    assert "overwrite=True" in str(caught.value) and str(partial_path(target)) in str(caught.value)
    model_file = save_model(model, tmp_path / "m.safetensors")
    with pytest.raises(ResumeError, match="has changed"):  # a distributed run checks the same
        prepare_tasks(str(input_tif), str(model_file), target, tile=16, resume=True)
    import zarr

    assert zarr.open_group(str(partial_path(target)), mode="r")["emsr_done"][:].tolist() == [True, True] + [False] * 3
    assert super_resolve(input_tif, model, output=target, tile=16, overwrite=True) == target
    with open_volume(target) as vol:
        np.testing.assert_array_equal(vol.data.compute(), super_resolve(changed, model, tile=16))


def test_resume_of_an_unchanged_input_reports_the_slices_reused(input_tif, out_dir, stack, model):
    target = out_dir / "sr.ome.zarr"
    events = iter_super_resolve(input_tif, model, output=target, tile=16)
    assert next(events).payload.slices_reused == 0
    _advance_to_slice(events, 3)
    events.close()
    tifffile.imwrite(input_tif, stack, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.02, "PhysicalSizeY": 0.02})
    events = list(iter_super_resolve(input_tif, model, output=target, tile=16, resume=True))  # rewritten, same pixels
    assert events[0].payload.slices_reused == 3 and events[0].payload.slices_to_do == 2
    assert [e.payload.slices_done for e in events if e.kind == "slice"] == [4, 5] and events[0].message == "slice 3/5"
    assert events[-1].payload == target


def test_a_full_disk_during_an_ome_tiff_run_leaves_the_folder_as_it_was(input_tif, out_dir, model):
    """A real short write (RLIMIT_FSIZE): the run fails with OutputSpaceError, nothing is left."""
    import resource

    from napari_emsr.io.writers import OutputSpaceError

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (60 * 1024, hard))  # room for 1 of the 5 36-KiB pages
    try:
        with pytest.raises(OutputSpaceError) as caught:
            super_resolve(input_tif, model, output=out_dir / "sr.ome.tif", tile=16)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(out_dir.iterdir()) == []
    error = caught.value
    assert error.path == out_dir / "sr.ome.tif" and error.needed >= 5 * 200 * 180 and error.kept is None
    assert "file-size limit" in str(error)


def test_uncertainty_map_written_beside_the_result(input_tif, out_dir, stack, model):
    """The map streams to its own file with the result: same shape and pixel size, float32, and equal to
    the in-memory map; every slice event carries its slice's map."""
    from napari_emsr.predict.uncertainty import ensemble_spread

    events = list(iter_super_resolve(input_tif, model, output=out_dir / "sr.ome.tif",
                                     uncertainty=out_dir / "sr-uncertainty.ome.tif", tile=16))  # fmt: skip
    assert events[0].payload.self_ensemble  # the map is the self-ensemble's spread: turned on for it
    assert events[-1].payload == (out_dir / "sr.ome.tif", out_dir / "sr-uncertainty.ome.tif")
    mean, spread = ensemble_spread(stack, model, tile=16)
    slices = [e.payload for e in events if e.kind == "slice"]
    assert [s.index for s in slices] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(np.stack([s.spread for s in slices]), spread)
    with open_volume(out_dir / "sr-uncertainty.ome.tif") as vol:
        assert vol.dtype == np.float32 and vol.shape == (5, 200, 180)
        assert vol.pixel_size_nm == pytest.approx((None, 10.0, 10.0))
        np.testing.assert_array_equal(vol.data.compute(), spread)
    with open_volume(out_dir / "sr.ome.tif") as vol:
        np.testing.assert_array_equal(vol.data.compute(), super_resolve(stack, model, tile=16, self_ensemble=True))
    assert spread.max() > 1 and (spread >= 0).all()  # a random network's 8 answers do differ
    assert sorted(p.name for p in out_dir.iterdir()) == ["sr-uncertainty.ome.tif", "sr.ome.tif"]


def test_uncertainty_map_resumes_with_the_result(input_tif, out_dir, stack, model):
    """Cancelled after 2 slices, both partial stores keep them; resume finishes both, equal to one whole run."""
    target, mapped = out_dir / "sr.ome.zarr", out_dir / "u.ome.zarr"
    events = iter_super_resolve(input_tif, model, output=target, uncertainty=mapped, tile=16, pyramid=False)
    _advance_to_slice(events, 2)
    events.close()
    assert sorted(p.name for p in out_dir.iterdir()) == [".sr.ome.zarr.partial", ".u.ome.zarr.partial"]
    events = list(iter_super_resolve(input_tif, model, output=target, uncertainty=mapped, tile=16, pyramid=False,
                                     resume=True))  # fmt: skip
    assert events[0].payload.slices_reused == 2 and [e.payload.index for e in events if e.kind == "slice"] == [2, 3, 4]
    assert sorted(p.name for p in out_dir.iterdir()) == ["sr.ome.zarr", "u.ome.zarr"]
    # a finished result resumed with a new map would not be written again: refused, nothing touched
    with pytest.raises(ValueError, match="is already complete and would not be written again"):
        super_resolve(input_tif, model, output=target, uncertainty=out_dir / "new.ome.zarr", tile=16, pyramid=False,
                      resume=True)  # fmt: skip
    assert sorted(p.name for p in out_dir.iterdir()) == ["sr.ome.zarr", "u.ome.zarr"]
    mean, spread = super_resolve(stack, model, uncertainty=True, tile=16)
    with open_volume(target) as vol, open_volume(mapped) as umap:
        np.testing.assert_array_equal(vol.data.compute(), mean)
        np.testing.assert_array_equal(umap.data.compute(), spread)


def test_uncertainty_map_refuses_what_cannot_work(input_tif, out_dir, stack, model):
    with pytest.raises(ValueError, match="give the uncertainty map its own path"):
        super_resolve(stack, model, output=out_dir / "sr.ome.tif", uncertainty=True)
    with pytest.raises(ValueError, match="is also the output"):
        super_resolve(stack, model, output=out_dir / "sr.ome.tif", uncertainty=out_dir / "sr.ome.tif")
    with pytest.raises(ValueError, match="is the input; write the uncertainty map to another path"):
        super_resolve(input_tif, model, output=out_dir / "sr.ome.tif", uncertainty=input_tif)
    (out_dir / "u.ome.tif").write_bytes(b"the user's file")
    with pytest.raises(OutputExistsError, match="u.ome.tif exists"):
        super_resolve(stack, model, output=out_dir / "sr.ome.tif", uncertainty=out_dir / "u.ome.tif")
    assert (out_dir / "u.ome.tif").read_bytes() == b"the user's file"
    assert sorted(p.name for p in out_dir.iterdir()) == ["u.ome.tif"]  # nothing else was started
    # a map on disk, the result in memory
    mean, written = super_resolve(stack[:2], model, uncertainty=out_dir / "u2.ome.zarr", tile=16)
    assert isinstance(mean, np.ndarray) and written == out_dir / "u2.ome.zarr"
