"""z-consistency: a flickering volume (independent changes per slice) ranks below a consistent one."""

import numpy as np
import pytest
from skimage.io import imread

from napari_emsr.metrics import flicker_index, z_consistency
from napari_emsr.resample import bicubic_upsample


@pytest.fixture(scope="module")
def lr(data_dir):
    """16 consecutive real FIB-SEM slices (10 nm z steps), down-sampled x3 in y and x (a 30 nm LR stack)."""
    files = sorted((data_dir / "validation_sample").glob("*.png"))[40:56]
    stack = np.stack([imread(f)[:480, :480] for f in files]).astype(np.float64)
    return stack.reshape(16, 160, 3, 160, 3).mean(axis=(2, 4))


def test_a_consistent_up_sampling_scores_as_its_input_and_flicker_ranks_below(lr):
    consistent = np.clip(bicubic_upsample(lr, 3), 0, 255)
    rng = np.random.default_rng(0)
    # the same up-sampling with an independent change in every slice: noise and a small random shift
    flickering = np.stack([np.roll(p, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) + rng.normal(0, 12, p.shape)
                           for p in consistent])  # fmt: skip
    good, bad = z_consistency(consistent, lr), z_consistency(flickering, lr)
    assert good.scale == 3 and good.slices == 16
    assert 0.8 < good.flicker_index < 1.05  # bicubic + block mean: about the input, a little smoother (0.87)
    assert bad.flicker_index > good.flicker_index + 0.2
    assert good.frc_xz > 0.8 and good.frc_yz > 0.8
    assert bad.frc_xz < good.frc_xz - 0.1 and bad.frc_yz < good.frc_yz - 0.1
    smoothed = np.stack([consistent[max(0, z - 1) : z + 2].mean(axis=0) for z in range(16)])  # averaged over z
    assert z_consistency(smoothed, lr).flicker_index < good.flicker_index - 0.1  # smoothing along z lowers it


def test_flicker_index_is_a_ratio_of_mean_slice_steps():
    ramp = np.arange(4.0)[:, None, None] * np.ones((4, 8, 8))
    assert flicker_index(2 * ramp, ramp) == (2.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="does not change from slice to slice"):
        flicker_index(ramp, np.ones((4, 8, 8)))


def test_bad_shapes_are_refused(lr):
    with pytest.raises(ValueError, match="3D"):
        z_consistency(lr[0], lr[0])
    with pytest.raises(ValueError, match="16 slices and the input 15"):
        z_consistency(bicubic_upsample(lr, 3), lr[:15])
    with pytest.raises(ValueError, match="is not 2 x input"):
        z_consistency(bicubic_upsample(lr, 3), lr, scale=2)
    few = z_consistency(bicubic_upsample(lr[:4], 3), lr[:4])
    assert few.frc_xz is None and few.flicker_index > 0  # fewer than 8 slices: no plane FRC


class _Counted:
    """A lazy (Z, H, W) view that records which slices were read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.read = data, data.shape, data.dtype, []

    def __getitem__(self, z):
        self.read.append(z)
        return self.data[z]


def _synthetic(seed=0, depth=12):
    """An LR stack of smooth structure drifting slowly in z, a x2 result of it, and that result with flicker."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(depth * 4, 96, 96)), (4, 3, 3))[::4]
    hr = 100 + 400 * field
    lr = hr.reshape(depth, 48, 2, 48, 2).mean(axis=(2, 4)) + rng.normal(0, 1, (depth, 48, 48))
    return lr, hr, hr + rng.normal(0, 15, hr.shape)


def test_iter_z_consistency_scores_several_outputs_as_z_consistency_does_one():
    from napari_emsr.metrics import iter_z_consistency

    lr, consistent, flickering = _synthetic()
    bicubic = bicubic_upsample(lr, 2, clip=False).astype(np.float64)
    outputs = {"sr": _Counted(consistent), "flicker": _Counted(flickering[:, :-1, :-2]), "bicubic": bicubic}
    source = _Counted(lr)
    events = list(iter_z_consistency(source, outputs))
    assert [e.kind for e in events] == ["start"] + ["slice"] * 12 + ["done"]
    assert events[0].payload == {"sr": 2, "flicker": 2, "bicubic": 2}
    assert [e.done for e in events[1:-1]] == list(range(1, 13)) and events[1].message == "z-consistency: 1/12 slices"
    assert source.read == outputs["sr"].read == list(range(12))  # each slice read once
    results = events[-1].payload
    assert list(results) == ["sr", "flicker", "bicubic"]
    for label, output in (("sr", consistent), ("flicker", flickering[:, :-1, :-2]), ("bicubic", bicubic)):
        h, w = output.shape[1] // 2, output.shape[2] // 2
        down = output[:, : 2 * h, : 2 * w].reshape(12, h, 2, w, 2).mean(axis=(2, 4))  # the whole stack at once
        steps = np.abs(np.diff(down, axis=0)).mean(), np.abs(np.diff(lr[:, :h, :w], axis=0)).mean()
        assert results[label].flicker_index == pytest.approx(steps[0] / steps[1], rel=1e-12)
        expected = z_consistency(output, lr)  # one output at a time: the same numbers
        for key, value in expected.to_dict().items():
            assert results[label].to_dict()[key] == pytest.approx(value, rel=1e-12), (label, key)
    assert results["flicker"].flicker_index > results["sr"].flicker_index + 0.5
    assert results["flicker"].frc_xz < results["sr"].frc_xz - 0.1


def test_iter_z_consistency_checks_every_output_first_and_stops_between_slices():
    from napari_emsr.metrics import ScoringError, iter_z_consistency

    lr, consistent, _ = _synthetic()
    first = _Counted(consistent)
    with pytest.raises(ScoringError, match="short: the output has 11 slices and the input 12") as caught:
        next(iter_z_consistency(lr, {"sr": first, "short": consistent[1:]}))
    assert caught.value.label == "short" and first.read == []
    with pytest.raises(ScoringError, match="flat: .*does not change from slice to slice"):
        list(iter_z_consistency(np.ones_like(lr), {"flat": consistent}))
    events = iter_z_consistency(lr, {"sr": first})
    for event in events:
        if event.kind == "slice" and event.done == 3:
            events.close()  # what Cancel does
    assert first.read == [0, 1, 2]
