"""Tiled prediction: equal to whole-slice prediction, blending, self-ensemble, intensities, progress."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_emsr import EMSR, iter_super_resolve, save_model, super_resolve
from napari_emsr.errors import HintedMemoryError
from napari_emsr.predict import (
    DIHEDRAL,
    IntensityMap,
    IntensityWarning,
    PixelSizeWarning,
    PlanSummary,
    SliceDone,
    UntrainedModelWarning,
    make_plan,
)
from napari_emsr.predict.engine import OutOfMemoryWarning

from ._predict_models import sensitive_model
from .conftest import TINY

pytestmark = pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    """The engine's arithmetic is checked against the network's own fp32 output: precision "auto"
    resolves as on a CPU without AMX-BF16 (fp32); bf16 is tested in test_precision.py."""
    from napari_emsr import device

    monkeypatch.setattr(device, "cpu_has_amx_bf16", lambda: False)


def whole(model, x):
    """The network on the whole image at once: the reference for tiled prediction."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None])[0, 0].numpy()


def tiles_of(x, model, **options):
    return next(iter_super_resolve(x, model, **options)).payload.tiles_per_slice


@pytest.mark.parametrize("scale, shape", [(1, (173, 131)), (2, (150, 101)), (4, (117, 149))])
def test_tiled_equals_whole_in_float(em_slice, scale, shape):
    model = sensitive_model(scale)
    x = em_slice[: shape[0], : shape[1]].astype(np.float32) / 255  # float in [0, 1]: taken as normalised
    assert tiles_of(x, model, tile=16) >= 4
    out = super_resolve(x, model, tile=16, overlap="exact")
    ref = whole(model, x)
    assert out.shape == ref.shape == (scale * shape[0], scale * shape[1]) and out.dtype == np.float32
    assert np.abs(out - ref).max() <= 1e-4


def test_tiled_equals_whole_in_uint8(em_slice):
    model = sensitive_model(3)
    x = em_slice[100:263, 50:201]
    assert tiles_of(x, model, tile=24) >= 4
    out = super_resolve(x, model, tile=24, overlap="exact")
    ref = IntensityMap(0, 255, np.dtype(np.uint8)).from_network(whole(model, x / 255))
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref).max() <= 1


def test_a_small_halo_is_approximate(em_slice):
    """The exactness above is the halo's doing: with too little context tiles differ from whole."""
    model = sensitive_model(2)
    x = em_slice[:150, :130].astype(np.float32) / 255
    out = super_resolve(x, model, tile=16, overlap=4)
    assert np.abs(out - whole(model, x)).max() > 1e-3


def test_batching_does_not_change_the_result(em_slice):
    model = sensitive_model(2)
    x = em_slice[:140, :120].astype(np.float32) / 255
    np.testing.assert_allclose(super_resolve(x, model, tile=16, batch=4), super_resolve(x, model, tile=16), atol=1e-5)


class MeanOffset(EMSR):
    """Nearest-neighbour up-sampling plus the tile's mean: every tile disagrees with its neighbours."""

    def forward(self, y):
        s = self.config.scale
        return F.interpolate(y, scale_factor=s, mode="nearest") * 0 + y.mean(dim=(2, 3), keepdim=True)


def test_blending_hides_seams():
    from napari_emsr import EMSRConfig

    model = MeanOffset(EMSRConfig.from_dict({**TINY, "scale": 2}))
    x = np.tile(np.linspace(0, 1, 200, dtype=np.float32), (40, 1))  # a ramp: tile means differ
    hard = super_resolve(x, model, tile=32, overlap=0, blend=0)
    soft = super_resolve(x, model, tile=32, overlap=0, blend=6)
    jumps_hard, jumps_soft = np.abs(np.diff(hard[0])), np.abs(np.diff(soft[0]))
    assert jumps_hard.max() > 0.05  # a visible step at every seam
    # the cross-fade spreads each step over 2 * blend * scale = 24 output pixels (sin^2 ramp)
    assert jumps_soft.max() <= jumps_hard.max() / 8
    assert np.all(np.diff(soft[0]) >= -1e-7)  # cross-fades between increasing plateaus: no overshoot
    assert soft.min() >= x.min() - 1e-6 and soft.max() <= x.max() + 1e-6


def test_self_ensemble_is_the_mean_of_eight_transforms(em_slice):
    model = sensitive_model(2)
    x = em_slice[:131, :97].astype(np.float32) / 255  # not square: rotations change the tile grid
    out = super_resolve(x, model, tile=16, self_ensemble=True)
    preds = []
    for k, flip in DIHEDRAL:
        seen = np.rot90(x[:, ::-1] if flip else x, k)
        back = np.rot90(whole(model, seen), -k)
        preds.append(back[:, ::-1] if flip else back)
    assert len({(k, f) for k, f in DIHEDRAL}) == 8
    assert np.abs(out - np.mean(preds, axis=0)).max() <= 1e-4
    assert np.abs(out - preds[0]).max() > 1e-3  # the ensemble is not just the plain prediction


def test_stack_is_predicted_slice_by_slice(em_slice):
    model = sensitive_model(2)
    stack = np.stack([em_slice[:60, :50], em_slice[60:120, :50], em_slice[120:180, 50:100]])
    out = super_resolve(stack, model, tile=16, overlap="exact")
    assert out.shape == (3, 120, 100) and out.dtype == np.uint8
    for z in range(3):
        np.testing.assert_array_equal(out[z], super_resolve(stack[z], model, tile=16, overlap="exact"))


def test_region_equals_the_same_region_of_the_whole(em_slice):
    model = sensitive_model(3)
    x = em_slice[:160, :150].astype(np.float32) / 255
    out = super_resolve(x, model, tile=16, overlap="exact", region=(slice(41, 97), slice(30, 77)))
    ref = whole(model, x)[3 * 41 : 3 * 97, 3 * 30 : 3 * 77]
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-4


def test_intensity_map_rounds_and_clips_never_wraps():
    to8 = IntensityMap(0, 255, np.dtype(np.uint8))
    values = np.array([-0.5, 0.0, 0.5, 1.0, 1.7], np.float32)
    np.testing.assert_array_equal(to8.from_network(values), [0, 0, 128, 255, 255])
    to16 = IntensityMap(100, 1100, np.dtype(np.uint16))
    np.testing.assert_array_equal(to16.from_network(np.array([-1, 0.25, 70], np.float32)), [0, 350, 65535])
    np.testing.assert_allclose(to16.to_network(np.array([100, 600], np.uint16)), [0, 0.5])
    tof = IntensityMap(0, 1, np.dtype(np.float32))
    assert tof.from_network(np.array([-0.25, 1.5], np.float32)).tolist() == [-0.25, 1.5]


def test_saturating_model_output_is_clipped(em_slice):
    model = sensitive_model(2)
    x = em_slice[:40, :40]
    with torch.no_grad():
        model.mapper[-1].bias.add_(3.0)  # outputs around 3.5 x 255: far above the uint8 range
    assert (super_resolve(x, model) == 255).all()
    with torch.no_grad():
        model.mapper[-1].bias.sub_(7.0)
    assert (super_resolve(x.astype(np.uint16), model) == 0).all()


def test_uint16_beyond_the_models_range_is_rescaled(em_slice):
    model = sensitive_model(2)
    x8 = em_slice[:48, :40]
    x16 = x8.astype(np.uint16) * 200 + 1000  # 1000..52000: not 0..255 units
    with pytest.warns(IntensityWarning, match="intensity_range"):
        out = super_resolve(x16, model)
    assert out.dtype == np.uint16
    # the stretch is linear and inverted: the same as the 8-bit prediction, back in 16-bit units
    low, high = np.percentile(x16, [0.1, 99.9])
    ref = IntensityMap(low, high, np.dtype(np.uint16)).from_network(whole(model, (x16 - low) / (high - low)))
    assert np.abs(out.astype(int) - ref).max() <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntensityWarning)
        small = super_resolve(x8.astype(np.uint16), model)  # a uint16 volume that uses 0..255 is used as is
        given = super_resolve(x16, model, intensity_range=(1000, 52000))
    assert np.abs(small.astype(int) - super_resolve(x8, model)).max() == 0
    assert given.dtype == np.uint16


def test_float64_stays_float64_and_percentile_models_use_the_data(em_slice, tmp_path):
    model = sensitive_model(2)
    x = em_slice[:40, :48].astype(np.float64) * 3.0 - 100
    path = save_model(model, tmp_path / "p.safetensors", normalization={"mode": "percentile", "low": 1, "high": 99})
    out = super_resolve(x, path)
    assert out.dtype == np.float64
    low, high = np.percentile(x, [1, 99])
    np.testing.assert_allclose(out, whole(model, (x - low) / (high - low)) * (high - low) + low, atol=1e-3)


def test_nan_is_refused_with_a_clear_message(em_slice):
    x = em_slice[:40, :40].astype(np.float32)
    x[5, 7] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite.*nan_to_num"):
        super_resolve(x, sensitive_model(2))
    stack = np.stack([em_slice[:40, :40]] * 12).astype(np.float32)
    stack[1, 3, 3] = np.inf  # not in the sample of slices read up front: found when slice 1 is read
    with pytest.raises(ValueError, match="slice 1 contains 1 NaN or infinite"):
        super_resolve(stack, sensitive_model(2))


def test_progress_events(em_slice):
    model = sensitive_model(2)
    stack = np.stack([em_slice[:100, :90], em_slice[100:200, :90], em_slice[200:300, :90]])
    events = list(iter_super_resolve(stack, model, tile=16, overlap="exact"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("slice") == 3
    assert {e.job for e in events} == {"predict"} and {e.unit for e in events} == {"tile"}
    plan = events[0].payload  # the default halo is the receptive radius, on the window grid
    assert isinstance(plan, PlanSummary) and plan.exact and plan.tiles_per_slice == 2
    assert plan.halo >= plan.receptive_radius == 34 and plan.halo % 4 == 0
    assert plan.slices_total == 3 and plan.slices_reused == 0
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == events[-1].total == 6
    assert all(e.eta is None or e.eta >= 0 for e in events) and events[-1].fraction == 1.0
    slices = [e.payload for e in events if e.kind == "slice"]
    assert all(isinstance(s, SliceDone) for s in slices)
    assert [s.index for s in slices] == [0, 1, 2] and [s.slices_done for s in slices] == [1, 2, 3]
    assert {s.slices_total for s in slices} == {3}
    assert [e.message for e in events if e.kind == "slice"] == ["slice 1/3", "slice 2/3", "slice 3/3"]
    np.testing.assert_array_equal(slices[1].image, events[-1].payload[1])
    assert plan.output_shape == events[-1].payload.shape == (3, 200, 180)


def test_first_slice_comes_first(em_slice):
    stack = np.stack([em_slice[i * 30 : i * 30 + 30, :40] for i in range(5)])
    events = list(iter_super_resolve(stack, sensitive_model(2), first_slice=3))
    order = [e.payload.index for e in events if e.kind == "slice"]
    assert order[0] == 3 and sorted(order) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(events[-1].payload, super_resolve(stack, sensitive_model(2)))
    with pytest.raises(ValueError, match="first_slice 9"):
        super_resolve(stack, sensitive_model(2), first_slice=9)


class OutOfMemoryBeyond(EMSR):
    """Raises the GPU out-of-memory error for batches of more than `limit` input pixels."""

    limit = 2 * 92 * 92

    def forward(self, y):
        if y.shape[0] * y.shape[-2] * y.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(y)


def test_out_of_memory_halves_batch_then_tile(em_slice, monkeypatch):
    reference = sensitive_model(2)
    model = OutOfMemoryBeyond(reference.config)
    model.load_state_dict(reference.state_dict())
    x = em_slice[:200, :200].astype(np.float32) / 255
    import napari_emsr.predict.api as api

    plans = []
    monkeypatch.setattr(api, "make_plan", lambda *a, **k: plans.append(make_plan(*a, **k)) or plans[-1])
    with pytest.warns(OutOfMemoryWarning) as caught:
        events = list(iter_super_resolve(x, model.eval(), tile=64, batch=8, overlap="exact"))
    [plan] = plans  # the run's plan is frozen, and still says what was planned after the shrink
    assert plan.geometry.tile == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.geometry = plan.geometry.halved()  # type: ignore[misc]
    messages = " ".join(str(w.message) for w in caught)
    assert "1 tile(s) per forward pass" in messages and "continuing with tile 32" in messages
    assert events[-1].done == events[-1].total
    assert np.abs(events[-1].payload - whole(reference, x)).max() <= 1e-4  # still exact
    # the shrink is the run's own state: the plan it announced is not changed under it
    assert events[0].payload.tile == 64 and events[0].total < events[-1].total


def test_out_of_memory_at_every_size_is_a_clear_error(em_slice):
    model = OutOfMemoryBeyond(sensitive_model(2).config)
    model.limit = 0
    with pytest.warns(OutOfMemoryWarning), pytest.raises(HintedMemoryError, match="even with one 8-pixel tile") as caught:
        super_resolve(em_slice[:64, :64], model.eval(), tile=64, overlap="exact")
    assert isinstance(caught.value, MemoryError)
    # on the CPU already: the advice is less context per tile, phrased for Python (halo 36 -> 16)
    assert [h.option for h in caught.value.hints] == ["overlap"]
    assert "pass overlap=16 (less context per tile needs less memory" in str(caught.value)


def test_model_warnings(em_slice, tmp_path):
    x = em_slice[:32, :32]
    model = sensitive_model(2)
    with pytest.warns(UntrainedModelWarning, match="random weights"):
        super_resolve(x, model)
    model.metadata = model.metadata.updated(trained=True, input_pixel_size_nm=30)
    with pytest.warns(PixelSizeWarning, match=r"\(10 nm\).*\(30 nm\) by -67 %.*Fine-tune.*resample"):
        super_resolve(x, model, pixel_size=10)
    with pytest.warns(PixelSizeWarning, match="unknown"):
        super_resolve(x, model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        super_resolve(x, model, pixel_size=34)  # within 25 %: no warning at all


def test_bad_options_are_refused_before_any_work(em_slice):
    x, model = em_slice[:32, :32], sensitive_model(2)
    for options, message in [
        (dict(tile=0), "tile must be a whole number"),
        (dict(overlap=-1), "overlap must be"),
        (dict(batch=0), "batch must be"),
        (dict(blend=20, tile=32), "blend 20 is too wide"),
        (dict(region=(slice(0, 10),)), "region must be"),
        (dict(region=(slice(20, 10), slice(0, 5))), "empty or outside"),
        (dict(intensity_range=(5, 1)), "low < high"),
        (dict(device="tpu"), "unknown device|not supported"),
    ]:
        with pytest.raises(ValueError, match=message):
            super_resolve(x, model, **options)
    with pytest.raises(ValueError, match="RGB"):
        super_resolve(np.zeros((40, 40, 3), np.uint8) + em_slice[:40, :40, None], model)
    with pytest.raises(ValueError, match="4 dimensions"):
        super_resolve(np.zeros((2, 3, 40, 40), np.uint8), model)
    with pytest.raises(TypeError, match="model must be"):
        super_resolve(x, object())


def test_auto_halo_is_close_to_whole_and_cheaper(em_slice):
    """The default halo is the measured effective radius: far below the bound, output nearly equal."""
    model = sensitive_model(2)
    x = em_slice
    events = list(iter_super_resolve(x, model, tile=64))
    plan = events[0].payload
    assert plan.halo_mode.startswith("auto: effective radius") and not plan.exact
    assert 0 < plan.halo < plan.receptive_radius
    exact = super_resolve(x, model, tile=64, overlap="exact")
    assert np.abs(events[-1].payload.astype(int) - exact).max() <= 1
    exact_plan = next(iter_super_resolve(x, model, tile=64, overlap="exact")).payload
    cost = plan.tiles_per_slice * plan.window_span**2  # input pixels through the network
    assert cost < 0.9 * exact_plan.tiles_per_slice * exact_plan.window_span**2


def test_effective_radius_grows_as_the_tolerance_shrinks(em_slice):
    from napari_emsr.model.emsr import receptive_radius
    from napari_emsr.predict.halo import effective_radius

    model = sensitive_model(2)
    x = em_slice[:200, :200] / 255.0
    radii = [effective_radius(model, x, tolerance=t) for t in (1e-2, 1e-3, 1e-5)]
    assert radii == sorted(radii) and radii[0] < radii[-1] <= receptive_radius(model.config)
    assert effective_radius(model, x[:20, :20]) == receptive_radius(model.config)  # too small to tell: safe


def test_a_radius_stored_with_the_model_is_used(em_slice, tmp_path):
    model = sensitive_model(2)
    model.metadata = model.metadata.updated(effective_radius_px=9)
    path = save_model(model, tmp_path / "m.safetensors")
    plan = next(iter_super_resolve(em_slice[:100, :100], path, tile=32)).payload
    assert plan.halo == 12 and "the model's effective radius 9 px" in plan.halo_mode
    with pytest.raises(ValueError, match="overlap must be 'auto', 'exact'"):
        super_resolve(em_slice[:40, :40], model, overlap="big")


@pytest.mark.parametrize(
    "tile, used, why", [(10, 12, "is not a multiple of the model's 4-pixel attention window"),
                        (3, 8, "is below two of the model's 4-pixel attention windows")],  # fmt: skip
)
def test_a_tile_off_the_window_grid_is_snapped_up_and_said(em_slice, tile, used, why):
    from napari_emsr.predict import TileSizeWarning

    x, model = em_slice[:40, :40], sensitive_model(2)
    with pytest.warns(TileSizeWarning, match=rf"tile {tile} {why}: using tile {used}") as caught:
        events = iter_super_resolve(x, model, tile=tile, overlap=4)
        plan = next(events).payload
        events.close()
    assert plan.tile == used and len([w for w in caught if w.category is TileSizeWarning]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", TileSizeWarning)
        events = iter_super_resolve(x, model, tile=used, overlap=4)  # on the grid: nothing to say
        assert next(events).payload.tile == used
        events.close()


def test_engine_reads_ahead_and_writes_behind(em_slice, tmp_path, monkeypatch):
    """Unit k+1 is read while unit k computes, and unit k is written while unit k+1 computes."""
    import threading

    import napari_emsr.predict.api as api
    from napari_emsr.io.writers import OmeZarrWriter

    stack = np.stack([em_slice[:48, :48], em_slice[48:96, :48], em_slice[96:144, :48]])
    read = {unit: threading.Event() for unit in [(0,), (1,), (2,)]}
    original_read, original_write = api.SlabReader.read, OmeZarrWriter.write
    seen = {"first_call": True, "ahead": None, "behind": None}

    def reading(self, unit):
        out = original_read(self, unit)
        read[unit].set()
        return out

    def writing(self, index, plane):
        if index == 0:  # unit 2 is read only once unit 1 is under way: that is, this write runs behind
            seen["behind"] = read[(2,)].wait(20)
        return original_write(self, index, plane)

    class Runner(api.ModelRunner):
        def __call__(self, tiles):
            if seen["first_call"]:  # the first unit's first tiles: the next unit is being read meanwhile
                seen["first_call"], seen["ahead"] = False, read[(1,)].wait(20)
            return super().__call__(tiles)

    monkeypatch.setattr(api.SlabReader, "read", reading)
    monkeypatch.setattr(OmeZarrWriter, "write", writing)
    monkeypatch.setattr(api, "ModelRunner", Runner)
    monkeypatch.setattr(api, "slices_per_unit", lambda *a, **k: 1)
    model = sensitive_model(2)
    events = list(iter_super_resolve(stack, model, output=tmp_path / "o.ome.zarr", tile=16))
    assert seen["ahead"] is True and seen["behind"] is True
    slices = [e.payload.index for e in events if e.kind == "slice"]
    assert slices == [0, 1, 2] and events[-1].kind == "done"  # events still in order, after each write
    from napari_emsr import open_volume

    with open_volume(tmp_path / "o.ome.zarr") as written:
        np.testing.assert_array_equal(written.data.compute(), super_resolve(stack, model, tile=16))
