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
