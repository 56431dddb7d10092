"""Registration of an HR field to the LR volume around it, on pairs made from real FlyEM FIB-SEM
slices with a known rotation, pixel-size ratio, offset and per-slice drift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import map_coordinates, uniform_filter

from napari_emsr.training.register import RegistrationError, register_pair

#: what registration must recover (stated in docs/training.md)
TOLERANCE = {"offset_px": 0.15, "rotation_deg": 0.15, "ratio_rel": 0.004, "drift_px": 0.2}


@pytest.fixture(scope="module")
def truth(data_dir) -> np.ndarray:
    """24 held-out 510 x 510 FlyEM slices (10 nm): the specimen both acquisitions see."""
    from skimage.io import imread

    files = sorted((data_dir / "validation_sample").glob("*.png"))[:24]
    return np.stack([imread(f) for f in files])[:, :510, :510].astype(np.float64)


def _make_pair(truth, *, ratio, theta_deg, offset, drift, hr_size=180, seed=0):
    """LR: the truth averaged over 3 x 3 pixels (30 nm) with noise. HR: a field of hr_size pixels of
    30 / ratio nm whose corner lies at LR ``offset``, rotated by ``theta_deg``, drifting by ``drift(j)``."""
    rng = np.random.default_rng(seed)
    n = truth.shape[0]
    lr = uniform_filter(truth, size=(1, 3, 3))[:, 1::3, 1::3]
    lr = lr + rng.normal(0, 6, lr.shape)
    theta = math.radians(theta_deg)
    c, s = math.cos(theta), math.sin(theta)
    v, u = np.meshgrid(np.arange(hr_size) + 0.5, np.arange(hr_size) + 0.5, indexing="ij")
    hr = np.empty((n, hr_size, hr_size))
    for j in range(n):
        dy, dx = drift(j)
        py = offset[0] + dy + (c * v - s * u) / ratio
        px = offset[1] + dx + (s * v + c * u) / ratio
        hr[j] = map_coordinates(truth[j], [3 * py - 0.5, 3 * px - 0.5], order=3, mode="nearest")
    hr = hr + rng.normal(0, 4, hr.shape)
    return np.clip(lr, 0, 255).astype(np.uint8), np.clip(hr, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_rotation_ratio_offset_and_drift_are_recovered(truth):
    mid = truth.shape[0] // 2
    drift = lambda j: (0.04 * (j - mid), -0.03 * (j - mid) + 0.004 * (j - mid) ** 2)  # noqa: E731
    lr, hr = _make_pair(truth, ratio=2.8, theta_deg=3.0, offset=(45.3, 52.7), drift=drift)
    reg = register_pair(lr, hr, ratio=2.75)  # the metadata is 2 % off
    assert reg.ratio == pytest.approx(2.8, rel=TOLERANCE["ratio_rel"])
    assert reg.rotation_deg == pytest.approx(3.0, abs=TOLERANCE["rotation_deg"])
    assert reg.offset[0] == pytest.approx(45.3, abs=TOLERANCE["offset_px"])
    assert reg.offset[1] == pytest.approx(52.7, abs=TOLERANCE["offset_px"])
    for j in (0, 5, 17, 23):
        assert reg.drift[j][0] == pytest.approx(drift(j)[0], abs=TOLERANCE["drift_px"])
        assert reg.drift[j][1] == pytest.approx(drift(j)[1], abs=TOLERANCE["drift_px"])
    assert reg.z0 == pytest.approx(0.0) and reg.score > 0.8
    assert "rotated +2.9" in reg.summary() or "rotated +3.0" in reg.summary()
    # the resampled HR is registered to the LR: brought to LR pixels it correlates far better than before
    lr_part, hr_part, used = reg.pairs(lr, hr, 3)
    assert hr_part.shape[1:] == (3 * lr_part.shape[1], 3 * lr_part.shape[2]) and len(used) == truth.shape[0]
    down = hr_part.reshape(hr_part.shape[0], lr_part.shape[1], 3, lr_part.shape[2], 3).mean(axis=(2, 4))
    ncc = np.corrcoef(down.ravel(), lr_part.astype(float).ravel())[0, 1]
    assert ncc > 0.9


@pytest.mark.slow
def test_another_z_spacing_pairs_each_hr_slice_with_its_lr_slice(truth):
    # HR sections half as thick: HR slice j lies at LR depth 4 + j / 2
    n_lr = truth.shape[0]
    lr, _ = _make_pair(truth, ratio=3.0, theta_deg=0.0, offset=(40.0, 40.0), drift=lambda j: (0.0, 0.0))
    fine = truth[4:16]
    _, hr_at_lr = _make_pair(fine, ratio=3.0, theta_deg=-2.0, offset=(40.0, 40.0), drift=lambda j: (0.0, 0.0))
    hr = np.repeat(hr_at_lr, 2, axis=0)  # two HR sections per LR section
    reg = register_pair(lr, hr, ratio=3.0, z_step=0.5)
    assert reg.z0 == pytest.approx(4.0, abs=0.51)
    assert reg.rotation_deg == pytest.approx(-2.0, abs=TOLERANCE["rotation_deg"])
    lr_part, hr_part, used = reg.pairs(lr, hr, 3)
    assert len(used) == len(set(round(reg.lr_depth(j)) for j in used)) <= n_lr  # one HR slice per LR slice


def test_unrelated_volumes_are_refused(truth):
    lr, _ = _make_pair(truth, ratio=3.0, theta_deg=0.0, offset=(40.0, 40.0), drift=lambda j: (0.0, 0.0))
    noise = np.random.default_rng(1).integers(0, 255, (6, 150, 150)).astype(np.uint8)
    with pytest.raises(RegistrationError, match="not found|unreliable"):
        register_pair(lr[:8], noise, ratio=3.0)
    with pytest.raises(RegistrationError, match="z_step"):
        register_pair(lr[:4], noise, ratio=3.0, z_step=1.0)


@pytest.mark.slow
def test_prepare_pair_with_registration_gives_an_exactly_registered_training_pair(truth):
    from napari_emsr.training.pairs import prepare_pair
    from napari_emsr.training.register import Registration

    lr, hr = _make_pair(truth[:12], ratio=2.9, theta_deg=-4.0, offset=(50.4, 47.8), drift=lambda j: (0.05 * j, 0.0))
    # the files say 30 and 10.5 nm (ratio 2.857): the registration refines it to 2.9
    lr_part, hr_part, report = prepare_pair(lr, hr, lr_pixel_nm=30.0, hr_pixel_nm=10.5, register=True)
    assert isinstance(report.registration, Registration)
    assert report.registration.ratio == pytest.approx(2.9, rel=TOLERANCE["ratio_rel"])
    assert report.scale == 3 and hr_part.shape == (12, 3 * lr_part.shape[1], 3 * lr_part.shape[2])
    assert "rotated -4.0" in report.summary() or "rotated -3.9" in report.summary()
    down = hr_part.reshape(12, lr_part.shape[1], 3, lr_part.shape[2], 3).mean(axis=(2, 4))
    assert np.corrcoef(down.ravel(), lr_part.astype(float).ravel())[0, 1] > 0.9
    # without registration the same pair (rotated 4 degrees) is matched far worse
    lr_plain, hr_plain, plain = prepare_pair(lr, hr, lr_pixel_nm=30.0, hr_pixel_nm=10.5, min_score=0.2)
    assert plain.score < report.score - 0.05
