"""The no-clean-reference check (paper eq. 8-9, Fig. 6) on closed-form and real data."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import gaussian

from napari_emsr.metrics import DENOISERS, denoise, noise_check, noise_sigma


@pytest.fixture
def smooth(rng):
    """A smooth image around 0.5 with standard deviation 0.2 (no noise of its own)."""
    field = gaussian(rng.standard_normal((192, 160)), sigma=6, mode="wrap")
    return 0.5 + 0.2 * field / field.std()


def test_statistics_with_a_given_clean_image(rng, smooth):
    noise = 0.01 + 0.03 * rng.standard_normal(smooth.shape)
    reference = (smooth + noise) * 255.0
    check = noise_check(reference, smooth * 255.0, data_range=255.0)
    assert check.denoiser == "given" and check.data_range == 255.0
    # reported on the 0..1 scale of Fig. 6
    assert check.mean_clean == pytest.approx(smooth.mean())
    assert check.mean_noise == pytest.approx(noise.mean())
    assert check.mean_reference == pytest.approx(check.mean_clean + check.mean_noise)  # eq. 8a
    assert check.var_noise == pytest.approx(noise.var())
    assert check.var_clean == pytest.approx(smooth.var())
    # eq. 8b, exactly, once the covariance term is included
    assert check.var_reference == pytest.approx(check.var_clean + check.var_noise + 2 * check.cov_clean_noise)
    assert check.ratio_mean == pytest.approx(smooth.mean() / abs(noise.mean()))
    assert check.ratio_var == pytest.approx(smooth.var() / noise.var())
    assert check.holds_9a and check.holds_9b and check.ok
    assert check.sigma_estimated == pytest.approx(0.03, rel=0.1)
    assert check.ratio_var_mad == pytest.approx(smooth.var() / 0.03**2, rel=0.25)
    assert "(9a)" in check.describe() and "holds" in check.describe()


def test_strong_noise_fails_9b_and_biased_noise_fails_9a(rng, smooth):
    loud = smooth + 0.1 * rng.standard_normal(smooth.shape)  # var ratio 0.04 / 0.01 = 4 < 10
    check = noise_check(loud, smooth, data_range=1.0)
    assert check.holds_9a and not check.holds_9b and not check.ok
    assert "NOT clean enough" in check.describe()
    dim = 0.1 * smooth  # mean 0.05; a bias of 0.01 gives a ratio of 5 < 10
    biased = noise_check(dim + 0.01, dim, data_range=1.0)
    assert not biased.holds_9a and biased.ratio_mean == pytest.approx(5.0, rel=0.05)


def test_much_greater_means_the_stated_ratio(rng, smooth):
    reference = smooth + 0.05 * rng.standard_normal(smooth.shape)
    ratio = noise_check(reference, smooth, data_range=1.0).ratio_var  # about 16
    assert noise_check(reference, smooth, data_range=1.0, ratio=ratio).holds_9b
    assert not noise_check(reference, smooth, data_range=1.0, ratio=ratio * 1.01).holds_9b
    assert noise_check(reference, smooth, data_range=1.0).required_ratio == 10.0


def test_noise_sigma_ignores_smooth_content(rng, smooth):
    for sigma in (0.01, 0.05):
        assert noise_sigma(smooth + sigma * rng.standard_normal(smooth.shape)) == pytest.approx(sigma, rel=0.05)
    assert noise_sigma(smooth) < 0.002


@pytest.mark.parametrize("denoiser", sorted(DENOISERS))
def test_denoisers_recover_the_noise_level(rng, smooth, denoiser):
    reference = smooth + 0.05 * rng.standard_normal(smooth.shape)
    check = noise_check(reference, denoiser=denoiser, data_range=1.0)
    assert check.denoiser == DENOISERS[denoiser]
    assert np.sqrt(check.var_noise) == pytest.approx(0.05, rel=0.2)
    assert abs(check.mean_noise) < 1e-3 and check.holds_9a
    stack = denoise(np.stack([reference, reference]), denoiser=denoiser, data_range=1.0)
    np.testing.assert_allclose(stack[1], denoise(reference, denoiser=denoiser, data_range=1.0))


def test_real_fibsem_slice_is_a_usable_reference(em_slice):
    check = noise_check(em_slice)  # uint8: L = 255 from the dtype, x_clean by non-local means
    assert check.data_range == 255.0 and check.denoiser == DENOISERS["nl-means"]
    assert 0.3 < check.mean_reference < 0.7
    assert check.ok and check.ratio_var > 10 and check.ratio_var_mad > 10
    # the denoiser's noise and the denoiser-free estimate agree to within a factor of 1.5
    assert 1 / 1.5 < np.sqrt(check.var_noise) / check.sigma_estimated < 1.5


def test_bad_input_is_refused(rng, smooth):
    with pytest.raises(ValueError, match="denoiser must be one of"):
        noise_check(smooth, denoiser="bm3d", data_range=1.0)
    with pytest.raises(ValueError, match="ratio"):
        noise_check(smooth, smooth, ratio=1.0, data_range=1.0)
    with pytest.raises(ValueError, match="same shape"):
        noise_check(smooth, smooth[:-1], data_range=1.0)
    with pytest.raises(ValueError, match="data_range is required"):
        noise_check(smooth, smooth)
    bad = smooth.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        noise_check(bad, smooth, data_range=1.0)
    with pytest.raises(ValueError, match="2D or 3D"):
        noise_check(smooth.ravel(), data_range=1.0)
