"""The degradation fitted to a registered pair: known parameters are recovered, and the simulated LR
is statistically like the real one (noise curve, power spectrum) on real FlyEM FIB-SEM slices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_emsr.training.acquisition import acquire
from napari_emsr.training.degrade import em_like
from napari_emsr.training.fit_degradation import DegradationFitError, fit_degradation

#: what the fit must recover on a pair made with known parameters (stated in docs/training.md)
TOLERANCE = {
    "probe_sigma_major": 0.10,  # relative
    "probe_sigma_minor": 0.15,  # relative
    "probe_angle_deg": 10.0,
    "gain": 0.03,
    "offset": 0.03,
    "gamma": 0.10,
    "dose": 0.15,  # relative
    "line_offset": 0.30,  # relative
}

#: a smaller search than the defaults (the test data are small): four jackknife blocks, fewer evaluations
FAST = dict(max_side=80, blocks=4, max_evals=240)


@pytest.fixture(scope="module")
def hr_stack(data_dir) -> np.ndarray:
    """Six 240 x 240 uint8 slices of FlyEM training_sample2 (real FIB-SEM, 10 nm, with its own noise)."""
    from skimage.io import imread

    files = sorted((data_dir / "training_sample2").glob("*.png"))[:60:10]
    return np.stack([imread(f) for f in files])[:, :240, :240]


def _acquire(hr: np.ndarray, scale: int, seed: int, **values: float) -> np.ndarray:
    n = hr.shape[0]
    base = dict(fill_x=1.0, fill_y=1.0, line_gain=0.0)
    params = {k: torch.full((n,), float(v)) for k, v in {**base, **values}.items()}
    x = torch.from_numpy(hr).float()[:, None] / 255
    lr = acquire(x, scale, params, torch.Generator().manual_seed(seed))
    return (lr[:, 0].numpy() * 255).round().astype(np.uint8)


def _check(fit, truth: dict[str, float]) -> None:
    major, minor = truth["probe_sigma"], truth["probe_sigma"] * truth["probe_aspect"]
    assert fit.probe_sigma_major.value == pytest.approx(major, rel=TOLERANCE["probe_sigma_major"])
    assert fit.probe_sigma_minor.value == pytest.approx(minor, rel=TOLERANCE["probe_sigma_minor"])
    if truth["probe_aspect"] < 0.8:  # the orientation of a round probe means nothing
        diff = (math.degrees(fit.probe_angle.value - truth["probe_angle"]) + 90) % 180 - 90
        assert abs(diff) < TOLERANCE["probe_angle_deg"]
    assert fit.gain.value == pytest.approx(truth["gain"], abs=TOLERANCE["gain"])
    assert fit.offset.value == pytest.approx(truth["offset"], abs=TOLERANCE["offset"])
    assert fit.gamma.value == pytest.approx(truth["gamma"], abs=TOLERANCE["gamma"])
    assert fit.dose.value == pytest.approx(truth["dose"], rel=TOLERANCE["dose"])
    assert fit.inverted == bool(truth["inverted"])
    assert fit.line_offset.value == pytest.approx(truth["line_offset"], rel=TOLERANCE["line_offset"])
    # every estimate says how sure it is
    for name in ("probe_sigma_major", "probe_sigma_minor", "gain", "offset", "gamma", "dose", "read_noise"):
        estimate = getattr(fit, name)
        assert math.isfinite(estimate.uncertainty) and estimate.uncertainty >= 0, name
    # read noise beside Poisson noise is the least constrained: within 3 standard errors, or 2 grey levels
    truth_read = truth["read_noise"]
    assert abs(fit.read_noise.value - truth_read) <= max(3 * fit.read_noise.uncertainty, 2 / 255)


@pytest.mark.parametrize(
    "scale, truth",
    [
        (3, dict(probe_sigma=0.7, probe_aspect=0.6, probe_angle=0.5, gain=0.9, offset=0.05, gamma=1.15,
                 dose=60.0, inverted=1.0, line_offset=2 / 255, read_noise=8 / 255)),
        (2, dict(probe_sigma=0.5, probe_aspect=1.0, probe_angle=0.0, gain=1.1, offset=-0.04, gamma=0.9,
                 dose=200.0, inverted=0.0, line_offset=3 / 255, read_noise=6 / 255)),
    ],
    ids=["x3-elliptic-inverted", "x2-round"],
)  # fmt: skip
@pytest.mark.slow
def test_known_parameters_are_recovered(hr_stack, scale, truth, one_thread):
    lr = _acquire(hr_stack, scale, seed=scale, **truth)
    fit = fit_degradation(lr, hr_stack, scale, **FAST)
    _check(fit, truth)
    assert fit.quantized and fit.scale == scale
    assert fit.goodness is not None and fit.goodness.noise_max_relative_error < 0.15
    assert "probe blur" in fit.summary() and "electrons" in fit.summary()


@pytest.mark.slow
def test_simulated_lr_is_statistically_like_an_acquisition_the_fit_has_not_seen(hr_stack, one_thread):
    """em_like (Gaussian beam on the HR grid, area averaging, Poisson, line and read noise) is not the
    fitted family's own simulator: the fitted model's LR must still match it in noise and spectrum."""
    x = torch.from_numpy(hr_stack).float()[:, None] / 255
    lr_t = em_like(x, 3, torch.Generator().manual_seed(7))
    lr = (lr_t[:, 0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    fit = fit_degradation(lr, hr_stack, 3, **FAST)
    g = fit.goodness
    assert g is not None
    assert g.noise_max_relative_error < 0.20  # per intensity bin
    assert g.spectrum_max_log10_error < 0.10  # per radial band: within ~26 % in power
    assert len(g.noise_levels) >= 8 and len(g.spectrum_bands) >= 6
    # em_like's beam (1.2 HR px) is 0.4 LR px; area averaging adds nothing to the Gaussian's sigma
    assert fit.probe_sigma_major.value == pytest.approx(0.4, abs=0.12)
    assert fit.dose.value == pytest.approx(60.0, rel=0.25)
    assert not fit.inverted


def test_simulate_makes_fresh_scans_of_the_fitted_kind(hr_stack, one_thread):
    truth = dict(probe_sigma=0.7, probe_aspect=0.6, probe_angle=0.5, gain=0.9, offset=0.05, gamma=1.15,
                 dose=60.0, inverted=1.0, line_offset=2 / 255, read_noise=4 / 255)  # fmt: skip
    fit = fit_degradation(
        _acquire(hr_stack, 3, seed=3, **truth), hr_stack, 3, max_side=80, blocks=2, max_evals=120, goodness=False
    )
    hr = torch.from_numpy(hr_stack[:2, :96, :96]).float()[:, None] / 255
    g = torch.Generator().manual_seed(0)
    a, b = fit.simulate(hr, g), fit.simulate(hr, g)
    assert a.shape == (2, 1, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, b)  # new noise (and jittered parameters) every call
    levels = torch.unique(a * 255)
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # 8-bit like the LR it was fitted to


def test_bad_pairs_are_refused_with_a_reason(hr_stack):
    lr = hr_stack[:, ::3, ::3]
    with pytest.raises(DegradationFitError, match="registered field"):
        fit_degradation(lr, hr_stack[:, :120, :120], 3)
    with pytest.raises(DegradationFitError, match="constant"):
        fit_degradation(np.zeros_like(lr), hr_stack, 3)
    with pytest.raises(DegradationFitError, match="at least"):
        fit_degradation(lr[:, :10, :10], hr_stack[:, :30, :30], 3)
    bad = lr.astype(np.float32)
    bad[0, 5, 5] = np.nan
    with pytest.raises(DegradationFitError, match="NaN"):
        fit_degradation(bad, hr_stack, 3)


def test_patch_sampler_fitted_strategies_draw_reproducible_simulated_inputs(hr_stack, one_thread):
    from napari_emsr.training.sampler import PatchSampler, Volume3D

    truth = dict(probe_sigma=0.5, probe_aspect=1.0, probe_angle=0.0, gain=1.0, offset=0.0, gamma=1.0,
                 dose=100.0, inverted=0.0, line_offset=0.0, read_noise=3 / 255)  # fmt: skip
    lr = _acquire(hr_stack, 3, seed=5, **truth)
    fit = fit_degradation(lr, hr_stack, 3, max_side=80, blocks=2, max_evals=120, goodness=False)
    hr_vol, lr_vol = Volume3D(hr_stack, range(6)), Volume3D(lr, range(6))

    def sampler(strategy: str, share: float = 0.5) -> PatchSampler:
        return PatchSampler([hr_vol], [lr_vol], 3, 16, strategy, seed=3, degradation=fit, fitted_share=share)

    y1, x1 = sampler("fitted").sample(4)
    y2, x2 = sampler("fitted").sample(4)
    assert torch.equal(y1, y2) and torch.equal(x1, x2)  # the same seed draws the same patches and noise
    assert y1.shape == (4, 1, 16, 16) and x1.shape == (4, 1, 48, 48)
    # each input is a scan of its own target: their LR-scale versions correlate strongly
    down = torch.nn.functional.avg_pool2d(x1, 3)
    for k in range(4):
        assert np.corrcoef(down[k].ravel().numpy(), y1[k].ravel().numpy())[0, 1] > 0.5
    # real+fitted mixes both kinds: with share 1 it draws simulated inputs only, which differ from real ones
    y_mix, x_mix = sampler("real+fitted", share=1.0).sample(4)
    assert y_mix.shape == y1.shape and x_mix.shape == x1.shape
    with pytest.raises(ValueError, match="degradation fitted"):
        PatchSampler([hr_vol], [lr_vol], 3, 16, "fitted", seed=3)


def test_forward_is_the_noise_free_scan_and_drives_the_consistency_term(hr_stack, one_thread):
    from napari_emsr.training.trainer import degradation_consistency

    truth = dict(probe_sigma=0.6, probe_aspect=0.8, probe_angle=1.0, gain=0.95, offset=0.02, gamma=1.1,
                 dose=150.0, inverted=0.0, line_offset=0.0, read_noise=2 / 255)  # fmt: skip
    fit = fit_degradation(_acquire(hr_stack, 3, seed=9, **truth), hr_stack, 3, max_side=80, blocks=2,
                          max_evals=120, goodness=False)  # fmt: skip
    hr = torch.from_numpy(hr_stack[:2, :120, :120]).float()[:, None] / 255
    clean = fit.forward(hr)
    noisy = fit.simulate(hr, torch.Generator().manual_seed(1), jitter=False)
    assert clean.shape == noisy.shape == (2, 1, 40, 40)
    assert float((noisy - clean).mean().abs()) < 0.01  # the same scan, less its zero-mean noise
    # the right HR explains its own LR far better than a wrong one (a shifted field)
    shifted = torch.roll(hr, 9, dims=-1)
    assert float(degradation_consistency(hr, clean, fit, "l1")) < 1e-4
    assert float(degradation_consistency(shifted, clean, fit, "l1")) > 0.03
    # on a noisy scan the right HR still does better (the rest is the scan's noise)
    assert float(degradation_consistency(hr, noisy, fit, "l1")) < float(degradation_consistency(shifted, noisy, fit, "l1"))
    # differentiable: the term can train a network
    x = hr.clone().requires_grad_(True)
    degradation_consistency(x, noisy, fit, "l2").backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
