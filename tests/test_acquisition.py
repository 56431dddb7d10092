"""The synthetic-em acquisition model: each effect does what it says, on real EM slices (FlyEM)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_emsr.training.acquisition import (
    SYNTHETIC_EM_RANGES,
    acquire,
    detector_transfer,
    draw_parameters,
    pixel_integrate,
    probe_blur,
    quantize,
    read_noise,
    scan_line_noise,
    shot_noise,
    synthetic_em,
    zoom,
)
from napari_emsr.training.sampler import PatchSampler, Volume3D


@pytest.fixture(scope="module")
def em_stack(data_dir) -> np.ndarray:
    """Six real 520 x 520 uint8 slices of FlyEM validation_sample (10 nm FIB-SEM)."""
    from skimage.io import imread

    return np.stack([imread(f) for f in sorted((data_dir / "validation_sample").glob("*.png"))[:6]])


@pytest.fixture(scope="module")
def slices(em_stack):
    """Four real 10 nm FIB-SEM slices, 0..1, cropped to 240 x 240 (a multiple of 2, 3 and 4)."""
    return torch.from_numpy(em_stack[:4, :240, :240] / 255.0).float()[:, None]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gradient_energy(x: torch.Tensor) -> tuple[float, float]:
    """Mean squared difference along x (columns) and along y (rows)."""
    gx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    gy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    return float(gx), float(gy)


def test_probe_blur_is_an_elliptical_gaussian_of_any_orientation():
    """The blur of a point is the probe: its second moments are the given sigmas along the given angle."""
    point = torch.zeros(1, 1, 61, 61)
    point[..., 30, 30] = 1.0
    yy, xx = torch.meshgrid(torch.arange(61.0) - 30, torch.arange(61.0) - 30, indexing="ij")
    for angle in (0.0, math.pi / 6, math.pi / 2):
        psf = probe_blur(point, 4.0, 2.0, angle)[0, 0]
        assert float(psf.sum()) == pytest.approx(1.0, abs=1e-5)
        u = math.cos(angle) * xx + math.sin(angle) * yy
        v = -math.sin(angle) * xx + math.cos(angle) * yy
        assert float((psf * u**2).sum()) == pytest.approx(16.0, rel=0.03)
        assert float((psf * v**2).sum()) == pytest.approx(4.0, rel=0.03)
        assert abs(float((psf * u * v).sum())) < 0.05


def test_probe_blur_on_real_data_keeps_the_mean_and_removes_detail_along_its_major_axis(slices):
    along_x = probe_blur(slices, 3.0, 0.0, 0.0)
    along_y = probe_blur(slices, 3.0, 0.0, math.pi / 2)
    assert float(along_x.mean()) == pytest.approx(float(slices.mean()), abs=2e-3)
    gx_x, gy_x = _gradient_energy(along_x)
    gx_y, gy_y = _gradient_energy(along_y)
    assert gx_x < 0.5 * gx_y and gy_y < 0.5 * gy_x
    assert torch.equal(probe_blur(slices, 0.0, 0.0, 0.3), slices)  # no blur: unchanged
    # per-image parameters: image 0 blurred, image 1 not
    mixed = probe_blur(slices[:2], torch.tensor([2.0, 0.0]), torch.tensor([2.0, 0.0]), 0.0)
    assert torch.allclose(mixed[1], slices[1], atol=1e-3) and not torch.allclose(mixed[0], slices[0], atol=1e-2)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pixel_integrate_full_fill_is_area_averaging_and_zero_fill_is_point_sampling(slices, scale):
    full = pixel_integrate(slices, scale, 1.0, 1.0)
    assert full.shape[-2:] == (240 // scale, 240 // scale)
    assert torch.allclose(full, F.avg_pool2d(slices, scale), atol=1e-5)
    point = pixel_integrate(slices, scale, 0.0, 0.0)
    if scale % 2:  # the LR pixel centre is an HR pixel centre
        c = scale // 2
        assert torch.allclose(point, slices[..., c::scale, c::scale], atol=1e-6)
    else:  # between two HR pixels: their mean
        c = scale // 2
        expect = 0.25 * (slices[..., c - 1 :: scale, c - 1 :: scale] + slices[..., c::scale, c - 1 :: scale]
                         + slices[..., c - 1 :: scale, c::scale] + slices[..., c::scale, c::scale])  # fmt: skip
        assert torch.allclose(point, expect, atol=1e-5)


def test_pixel_integration_averages_noise_away_in_proportion_to_the_area(slices):
    """Integrating over the pixel is why a coarse scan is less noisy: noise variance / area."""
    noise = torch.randn(slices.shape, generator=_gen(1)) * 0.05
    for fill_x, fill_y, area in ((1.0, 1.0, 9), (1.0, 0.0, 3)):
        out = pixel_integrate(slices + noise, 3, fill_x, fill_y) - pixel_integrate(slices, 3, fill_x, fill_y)
        assert float(out.var()) == pytest.approx(0.05**2 / area, rel=0.1)


def test_detector_transfer_applies_gain_offset_and_gamma(slices):
    out = detector_transfer(slices, 1.1, -0.05, 0.8)
    assert torch.allclose(out, -0.05 + 1.1 * slices.clamp_min(0) ** 0.8)
    # monotonic: the order of intensities is kept
    ramp = torch.sort(slices.flatten()).values.view(1, 1, 1, -1)
    assert bool((detector_transfer(ramp, 0.9, 0.02, 1.2).diff() >= 0).all())


def test_shot_noise_variance_grows_with_intensity_as_poisson(slices):
    """Var(noisy - x) = x / dose, bin by bin of the real slice's intensities; the mean is kept."""
    dose = 50.0
    x = slices.repeat(8, 1, 1, 1)  # the same slices, 8 draws each
    noisy = shot_noise(x, dose, _gen(2))
    assert float(noisy.mean()) == pytest.approx(float(x.mean()), abs=2e-3)
    residual = (noisy - x).flatten().numpy()
    level = x.flatten().numpy()
    centres, variances = [], []
    edges = np.quantile(level, np.linspace(0.02, 0.98, 7))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (level >= lo) & (level < hi)
        assert inside.sum() > 10_000
        centres.append(level[inside].mean())
        variances.append(residual[inside].var())
    assert all(np.diff(variances) > 0)  # grows with intensity
    slope = np.polyfit(centres, variances, 1)[0]
    assert slope == pytest.approx(1 / dose, rel=0.1)
    # a higher dose is less noisy
    assert float((shot_noise(x, 400.0, _gen(3)) - x).var()) < 0.2 * float((noisy - x).var())


def test_inverted_shot_noise_grows_towards_dark_pixels(slices):
    """Contrast-inverted images (what the shipped FIB-SEM and SBF-SEM data are, see
    benchmarks/measure_noise.py) counted their electrons on 1 - x: variance (1 - x) / dose."""
    x = slices.repeat(4, 1, 1, 1)
    noisy = shot_noise(x, 50.0, _gen(11), inverted=1.0)
    residual, level = (noisy - x).flatten().numpy(), x.flatten().numpy()
    dark, bright = residual[level < np.quantile(level, 0.2)], residual[level > np.quantile(level, 0.8)]
    assert dark.var() > 1.3 * bright.var()
    expected = ((1 - level[level < np.quantile(level, 0.2)]) / 50.0).mean()
    assert dark.var() == pytest.approx(expected, rel=0.1)
    # per image: only the first of two is inverted
    both = shot_noise(x[:2], 50.0, _gen(12), inverted=torch.tensor([1.0, 0.0]))
    plain = shot_noise(x[1:2], 50.0, _gen(13))
    assert float((both[1] - x[1]).var()) == pytest.approx(float((plain - x[1:2]).var()), rel=0.1)


def test_scan_line_noise_is_constant_along_each_line(slices):
    out = scan_line_noise(slices, 0.02, 0.0, _gen(4)) - slices
    row_means = out.mean(dim=-1)  # one offset per line
    assert float(row_means.std()) == pytest.approx(0.02, rel=0.15)
    assert float((out - row_means[..., None]).abs().max()) < 1e-6  # nothing else
    # the gain part scales with the signal: brighter pixels of a line move more
    gained = scan_line_noise(slices, 0.0, 0.05, _gen(5)) - slices
    ratio = gained / slices.clamp_min(1e-3)
    assert float((ratio - ratio.mean(dim=-1, keepdim=True))[slices > 0.05].abs().max()) < 1e-3


def test_read_noise_is_signal_independent(slices):
    out = (read_noise(slices, 0.03, _gen(6)) - slices).flatten().numpy()
    level = slices.flatten().numpy()
    dark, bright = out[level < 0.4], out[level > 0.6]
    assert dark.std() == pytest.approx(0.03, rel=0.05) and bright.std() == pytest.approx(0.03, rel=0.05)


def test_quantize_gives_8_bit_levels_in_range():
    x = torch.linspace(-0.2, 1.2, 10_001)
    q = quantize(x)
    assert float(q.min()) == 0.0 and float(q.max()) == 1.0
    levels = torch.unique(q * 255)
    assert torch.allclose(levels, levels.round()) and len(levels) == 256


def test_zoom_changes_the_pixel_size(slices):
    """A zoom of 2 shows twice the field in the same pixels: structures become half as wide."""
    out = zoom(slices, 2.0, 100)
    assert out.shape[-2:] == (100, 100)
    assert float(out.mean()) == pytest.approx(float(slices[..., 20:220, 20:220].mean()), abs=5e-3)
    gx0, _ = _gradient_energy(slices[..., 70:170, 70:170])
    gx, _ = _gradient_energy(out)
    assert gx > 1.5 * gx0  # finer detail per pixel
    assert torch.equal(zoom(slices, 1.0, 240), slices)
    with pytest.raises(ValueError, match="needs"):
        zoom(slices, 3.0, 100)


def test_synthetic_em_draws_its_parameters_per_patch_within_the_ranges(slices):
    params = draw_parameters(2000, _gen(7))
    for name, (low, high) in SYNTHETIC_EM_RANGES.items():
        values = params[name]
        assert float(values.min()) >= low - 1e-6 and float(values.max()) <= high + 1e-6, name
        assert float(values.max() - values.min()) > 0.8 * (high - low), name  # the range is used
    lr, target = synthetic_em(slices, 3, _gen(8))
    assert lr.shape == (4, 1, 80, 80) and target.shape == slices.shape
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4) and float(lr.min()) >= 0 and float(lr.max()) <= 1
    again = synthetic_em(slices, 3, _gen(8))
    assert torch.equal(lr, again[0]) and torch.equal(target, again[1])  # seeded: reproducible
    # the same HR twice gets two different acquisitions
    twice, _ = synthetic_em(slices[:1].expand(2, -1, -1, -1), 3, _gen(9))
    assert float((twice[0] - twice[1]).abs().mean()) > 0.01
    # and it is a low-resolution view of the same field
    corr = np.corrcoef(F.avg_pool2d(slices, 3).flatten().numpy(), lr.flatten().numpy())[0, 1]
    assert corr > 0.5


def test_synthetic_em_applies_the_tone_curve_to_input_and_target_alike(slices):
    """The model must keep the input's contrast: LR and target share gain, offset and gamma."""
    lr, target = synthetic_em(slices.repeat(4, 1, 1, 1), 3, _gen(14))
    pooled = F.avg_pool2d(target, 3)
    for i in range(lr.shape[0]):  # the LR's brightness follows its own target's, patch by patch
        assert abs(float(lr[i].mean() - pooled[i].mean())) < 0.05
    assert float(target.mean(dim=(1, 2, 3)).std()) > 0.01  # the tone curve did vary between patches
    plain_lr, plain_target = synthetic_em(slices, 3, _gen(15), tone=False)
    assert torch.equal(plain_target, slices)
    assert abs(float(plain_lr.mean() - slices.mean())) < 0.03


def test_acquire_with_fixed_parameters_is_the_chain_of_effects(slices):
    g = _gen(10)
    params = {k: torch.full((4,), v) for k, v in dict(
        probe_sigma=0.5, probe_aspect=1.0, probe_angle=0.0, fill_x=1.0, fill_y=1.0, gain=1.0, offset=0.0,
        gamma=1.0, dose=1e7, inverted=0.0, line_offset=0.0, line_gain=0.0, read_noise=0.0, zoom=1.0).items()}  # fmt: skip
    out = acquire(slices, 3, params, g)
    expect = quantize(F.avg_pool2d(probe_blur(slices, 1.5, 1.5, 0.0), 3))
    assert float((out - expect).abs().max()) <= 1.5 / 255  # only the (tiny) shot noise differs


def test_patch_sampler_synthetic_em(em_stack):
    vol = Volume3D(em_stack[:6, :200, :200], list(range(6)), 0, 255)
    small = Volume3D(em_stack[:3, :120, :120], list(range(3)), 0, 255)
    a = PatchSampler([vol, small], None, 3, 24, "synthetic-em", seed=1, balance="volumes")
    b = PatchSampler([vol, small], None, 3, 24, "synthetic-em", seed=1, balance="volumes")
    y, x = a.sample(4)
    assert y.shape == (4, 1, 24, 24) and x.shape == (4, 1, 72, 72)
    y2, x2 = b.sample(4)
    assert torch.equal(y, y2) and torch.equal(x, x2)
    assert torch.allclose(a._weights, torch.tensor([0.5, 0.5], dtype=torch.float64))
    pixels = PatchSampler([vol, small], None, 3, 24, "synthetic-em", seed=1)
    assert float(pixels._weights[0]) > 0.8


def _fine_detail_share(x: torch.Tensor) -> float:
    """The share of the (mean-free) power spectrum of (N, 1, H, W) above 0.8 of the Nyquist frequency."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2, dim=(-2, -1))
    h, w = x.shape[-2:]
    fy = torch.fft.fftshift(torch.fft.fftfreq(h))[:, None] * 2
    fx = torch.fft.fftshift(torch.fft.fftfreq(w))[None, :] * 2
    radius = torch.sqrt(fy**2 + fx**2)  # 1 = Nyquist
    return float(spectrum[..., radius > 0.8].sum() / spectrum.sum())


def test_patch_sampler_zoom_range_sets_the_pixel_size_of_the_targets(em_stack):
    """zoom < 1 interpolates HR patches: of the three, its targets keep the least power near Nyquist."""
    vol = Volume3D(em_stack[:6, :300, :300], list(range(6)), 0, 255)
    shares = {}
    for factor in (0.75, 1.0, 1.5):
        sampler = PatchSampler([vol], None, 3, 24, "synthetic-em", seed=2, zoom=(factor, factor))
        shares[factor] = _fine_detail_share(sampler.sample(8)[1])
    assert shares[0.75] < 0.5 * shares[1.0]  # the interpolated band above 0.75 of Nyquist is nearly empty
    # down-sampled patches lose some (the resampling filter, HR noise averaged) but keep more than interpolated ones
    assert shares[0.75] < 0.75 * shares[1.5] < 0.75 * shares[1.0]
    # without a range the documented default is drawn: the same patches as asking for it by name
    default = PatchSampler([vol], None, 3, 24, "synthetic-em", seed=3).sample(4)
    named = PatchSampler([vol], None, 3, 24, "synthetic-em", seed=3, zoom=SYNTHETIC_EM_RANGES["zoom"]).sample(4)
    assert torch.equal(default[1], named[1]) and torch.equal(default[0], named[0])
