"""FRC (paper eq. 19) against closed forms: identical images, independent noise, known SNR, band limits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_emsr.metrics import (
    FRCCurve,
    even_odd_halves,
    frc_curve,
    frc_mean,
    frc_pool,
    frc_resolution,
    frc_threshold,
    half_bit_threshold,
    iter_reference_free,
    pool_pairs,
    reference_free_resolution,
)
from napari_emsr.metrics._fourier import ring_map


def shaped_signal(rng, shape, gain, n=1):
    """``n`` real images whose spectrum is white noise times ``gain(ring)``: known power per ring."""
    ring = ring_map(shape)
    out = []
    for _ in range(n):
        spectrum = np.fft.fft2(rng.standard_normal(shape)) * gain(ring.astype(float))
        out.append(np.fft.ifft2(spectrum).real)
    return np.stack(out) if n > 1 else out[0]


def noisy_pair(rng, signal, sigma):
    return signal + sigma * rng.standard_normal(signal.shape), signal + sigma * rng.standard_normal(signal.shape)


def brute_force_frc(a, b):
    """Eq. 19 pixel by pixel, written independently of the library."""
    h, w = a.shape
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    n_rings = min(h, w) // 2
    cross, pa, pb, count = (np.zeros(n_rings + 1) for _ in range(4))
    for u in range(h):
        for v in range(w):
            fy = u / h if u < (h + 1) // 2 else (u - h) / h
            fx = v / w if v < (w + 1) // 2 else (v - w) / w
            r = int(round(np.sqrt(fy * fy + fx * fx) * min(h, w)))
            if 1 <= r <= n_rings:
                cross[r] += (fa[u, v] * np.conj(fb[u, v])).real
                pa[r] += abs(fa[u, v]) ** 2
                pb[r] += abs(fb[u, v]) ** 2
                count[r] += 1
    return cross[1:] / np.sqrt(pa[1:] * pb[1:]), count[1:]


@pytest.mark.parametrize("shape", [(12, 20), (17, 11)])
def test_matches_the_convention_pixel_by_pixel(rng, shape):
    a, b = rng.standard_normal(shape), rng.standard_normal(shape) + 0.5 * rng.standard_normal(shape)
    b = a + b  # correlated
    expected, count = brute_force_frc(a + 3.0, b - 7.0)  # offsets: means are subtracted
    curve = frc_curve(a + 3.0, b - 7.0)
    assert curve.frc.shape == (min(shape) // 2,)
    np.testing.assert_allclose(curve.frc, expected, rtol=1e-10)
    np.testing.assert_array_equal(curve.n_pixels, count)
    np.testing.assert_allclose(curve.frequency, curve.rings / min(shape))
    assert frc_mean(a + 3.0, b - 7.0) == pytest.approx(np.mean(expected), rel=1e-12)


@pytest.mark.parametrize("shape", [(64, 64), (65, 64), (31, 100), (100, 31)])
def test_ring_count_and_frequencies(rng, shape):
    curve = frc_curve(rng.standard_normal(shape), rng.standard_normal(shape), pixel_size=4.0)
    n = min(shape)
    assert len(curve.frc) == n // 2 and curve.rings[0] == 1 and curve.rings[-1] == n // 2
    assert curve.frequency[-1] == pytest.approx((n // 2) / n) and curve.frequency[-1] <= 0.5
    np.testing.assert_allclose(curve.frequency_per_nm, curve.frequency / 4.0)
    assert curve.shape == shape


def test_identical_images_correlate_fully(rng):
    image = rng.standard_normal((40, 64))
    for window in (None, "hann", "tukey"):
        curve = frc_curve(image, 2.0 * image + 5.0, window=window)
        np.testing.assert_allclose(curve.frc, 1.0, atol=1e-12)
        assert curve.mean == pytest.approx(1.0)
    assert not frc_resolution(frc_curve(image, image)).reached


def test_sinusoid_lands_in_its_ring_on_a_non_square_image(rng):
    h, w = 90, 150
    y, x = np.mgrid[0:h, 0:w]
    wave = np.cos(2 * np.pi * (9 * y / h + 20 * x / w))  # |f| = sqrt(0.1^2 + 0.1333^2) = 0.1667 c/px
    curve = frc_curve(wave + 0.01 * rng.standard_normal((h, w)), wave)
    assert curve.rings[np.argmax(curve.power_a)] == round(np.hypot(9 / h, 20 / w) * min(h, w)) == 15


@pytest.mark.parametrize("window", [None, "hann", "tukey"])
def test_independent_white_noise_gives_zero(rng, window):
    # FRC of independent noise per ring: mean 0, standard deviation 1 / sqrt(n_effective)
    # (n_effective = pixels in the ring without a window). z = FRC * sqrt(n_eff) is then ~ N(0, 1).
    shape = (128, 160)
    curves = [frc_curve(rng.standard_normal(shape), rng.standard_normal(shape), window=window) for _ in range(4)]
    first = 4 if window else 1  # a window's correlation model is exact once rings are wider than its spectrum
    z = np.concatenate([c.frc[first:] * np.sqrt(c.n_effective[first:]) for c in curves])
    assert np.abs(z).max() < 4.5  # 240 draws: P(any |z| > 4.5) ~ 2e-3
    assert 0.88 < z.std() < 1.12  # the sample std of 240 normals has std 0.046
    for c in curves:
        bound = 4 * np.sqrt(np.sum(1 / c.n_effective)) / len(c.frc)  # 4 sigma of a mean over rings
        assert abs(c.mean) < bound
    if window == "hann":
        assert np.all(curves[0].n_effective[4:] < 0.7 * curves[0].n_pixels[4:])


@pytest.mark.parametrize("snr", [0.25, 1.0, 4.0])
def test_same_signal_plus_independent_noise_gives_snr_over_one_plus_snr(rng, snr):
    # a = s + n1, b = s + n2 with white s and n: every ring has the same SNR, and
    # FRC = var(s) / (var(s) + var(n)) = SNR / (1 + SNR), with std (1 - rho^2) / sqrt(n_ring).
    rho = snr / (1 + snr)
    signal = rng.standard_normal((256, 192))
    curve = frc_curve(*noisy_pair(rng, signal, 1 / np.sqrt(snr)))
    z = (curve.frc - rho) * np.sqrt(curve.n_pixels) / (1 - rho**2)
    big = curve.n_pixels >= 50
    assert np.abs(z[big]).max() < 4.5 and 0.8 < z[big].std() < 1.2
    bound = 4 * (1 - rho**2) * np.sqrt(np.sum(1 / curve.n_pixels)) / len(curve.frc)
    assert abs(curve.mean - rho) < bound


def test_known_spectrum_gives_the_predicted_curve_and_resolution(rng):
    # signal power falls as G(r)^2 = exp(-2 r^2 / r0^2): ring SNR(r) = G(r)^2 / sigma^2, and the
    # expected FRC is SNR / (1 + SNR). 8 pooled pairs keep the crossing within a ring or so.
    r0, sigma, shape = 40.0, 0.25, (256, 256)
    signals = shaped_signal(rng, shape, lambda r: np.exp(-(r**2) / r0**2), n=8)
    curves = [frc_curve(*noisy_pair(rng, s, sigma), pixel_size=10.0) for s in signals]
    pooled = frc_pool(curves)
    snr = np.exp(-2 * pooled.rings**2 / r0**2) / sigma**2
    expected = snr / (1 + snr)
    resolved = expected > 0.3
    z = (pooled.frc - expected) * np.sqrt(pooled.n_pixels) / (1 - expected**2)
    assert np.abs(z[pooled.n_pixels >= 50]).max() < 4.5
    assert np.abs(pooled.frc[resolved] - expected[resolved]).max() < 0.05
    # 1/7: SNR = 1/6 at r = r0 sqrt(ln(6 / sigma^2) / 2) = 60.4
    r_17 = r0 * np.sqrt(np.log(6 / sigma**2) / 2)
    res = frc_resolution(pooled, threshold="1/7")
    assert res.reached and abs(res.ring - r_17) < 1.5
    assert res.resolution_px == pytest.approx(256 / res.ring)
    assert res.resolution_nm == pytest.approx(10.0 * 256 / res.ring)
    # half-bit: the crossing of the closed-form curve with the threshold for these ring sizes
    predicted = frc_resolution(dataclasses.replace(pooled, frc=expected), threshold="half-bit")
    measured = frc_resolution(pooled, threshold="half-bit")
    assert abs(measured.ring - predicted.ring) < 1.5 and predicted.ring < r_17


def test_band_limited_signal_resolves_its_cutoff(rng):
    # signal only in rings <= 80 of a 512 x 512 image: FRC ~ 0.92 up to the cutoff, ~ 0 beyond
    # (std 1/sqrt(2 pi 81) = 0.044, so 1/7 is 3.2 sigma away): the crossing lies in (80, 81].
    cutoff, shape = 80, (512, 512)
    signal = shaped_signal(rng, shape, lambda r: (r <= cutoff).astype(float))
    curve = frc_curve(*noisy_pair(rng, signal, 0.3), pixel_size=10.0)
    for threshold in ("1/7", "half-bit"):
        res = frc_resolution(curve, threshold=threshold)
        assert cutoff < res.ring <= cutoff + 1
        assert 10.0 * 512 / (cutoff + 1) <= res.resolution_nm < 10.0 * 512 / cutoff


def test_windows_remove_the_border_artefact(rng):
    # A ramp is not periodic: its wrap-around step puts power ~ 1/f^2 on the axes of the spectrum, in
    # every ring, and that power is the same in both images. Beyond the signal's band (rings > 16)
    # the true FRC is 0; without a window the step's correlated power lifts it, a window removes it.
    shape = (128, 128)
    ramp = np.linspace(0, 10, shape[1])[None, :] * np.ones(shape)
    signal = ramp + shaped_signal(rng, shape, lambda r: (r <= 16) * 3.0)
    a, b = noisy_pair(rng, signal, 1.0)
    high = {w: frc_curve(a, b, window=w).frc[24:] for w in (None, "hann", "tukey")}
    n_high = frc_curve(a, b, window="hann").n_effective[24:]
    assert high[None].mean() > 0.1
    assert abs(high["hann"].mean()) < 4 * np.sqrt(np.sum(1 / n_high)) / len(n_high)
    assert abs(high["tukey"].mean()) < 0.3 * high[None].mean()
    assert frc_curve(a, b, window="tukey", tukey_alpha=1.0).frc == pytest.approx(frc_curve(a, b, window="hann").frc)


def test_half_bit_threshold_is_van_heel_and_schatz():
    n = np.array([1, 2, 10, 100, 1e4, 1e12])
    published = (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))  # their eq. 17
    np.testing.assert_allclose(half_bit_threshold(n), published, atol=2e-4)
    assert half_bit_threshold(1) == pytest.approx(1.0)
    assert half_bit_threshold(1e12) == pytest.approx(0.2071 / 1.2071, abs=1e-4)
    assert np.all(np.diff(half_bit_threshold(np.arange(1, 500))) < 0)
    with pytest.raises(ValueError, match="at least one pixel"):
        half_bit_threshold([0])


def test_thresholds_follow_the_ring_sizes(rng):
    curve = frc_curve(rng.standard_normal((64, 96)), rng.standard_normal((64, 96)))
    np.testing.assert_allclose(frc_threshold(curve, "1/7"), 1 / 7)
    np.testing.assert_allclose(frc_threshold(curve, "half-bit"), half_bit_threshold(curve.n_pixels))
    np.testing.assert_allclose(frc_threshold(curve, 0.5), 0.5)
    for bad in ("fsc", 0.0, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            frc_threshold(curve, bad)


def test_resolution_interpolates_and_reports_edge_cases(rng):
    curve = frc_curve(rng.standard_normal((64, 64)), rng.standard_normal((64, 64)), pixel_size=2.0)
    n = len(curve.frc)
    linear = dataclasses.replace(curve, frc=1.0 - curve.rings / n)  # crosses 1/7 at r = 6n/7 exactly
    res = frc_resolution(linear, threshold="1/7")
    assert res.ring == pytest.approx(6 * n / 7) and res.frequency == pytest.approx(res.ring / 64)
    assert res.resolution_nm == pytest.approx(2.0 * 64 / res.ring)
    assert frc_resolution(linear, pixel_size=5.0).resolution_nm == pytest.approx(5.0 * 64 / res.ring)
    zero = frc_resolution(dataclasses.replace(curve, frc=np.zeros(n)))
    assert zero.ring == 1.0 and zero.resolution_px == 64
    never = frc_resolution(dataclasses.replace(curve, frc=np.ones(n)))
    assert not never.reached and never.resolution_nm is None and "not reached" in never.describe()
    assert "4 nm" in never.describe()
    with pytest.raises(ValueError, match="pixel size"):
        frc_resolution(curve, pixel_size=-1)


def test_pooling_adds_ring_sums(rng):
    pairs = [(rng.standard_normal((48, 64)), rng.standard_normal((48, 64))) for _ in range(3)]
    curves = [frc_curve(a, a + b) for a, b in pairs]
    pooled = frc_pool(curves, label="stack")
    cross = sum(c.cross for c in curves)
    power = np.sqrt(sum(c.power_a for c in curves) * sum(c.power_b for c in curves))
    np.testing.assert_allclose(pooled.frc, cross / power)
    np.testing.assert_array_equal(pooled.n_pixels, 3 * curves[0].n_pixels)
    assert pooled.n_slices == 3 and pooled.label == "stack"
    with pytest.raises(ValueError, match="at least one"):
        frc_pool([])
    with pytest.raises(ValueError, match="share shape"):
        frc_pool([curves[0], frc_curve(*pairs[0], window="hann")])


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.zeros((16, 16)), np.zeros((16, 18)), "same shape"),
        (np.full((16, 16), np.nan), np.zeros((16, 16)), "NaN"),
        (np.full((16, 16), np.inf), np.ones((16, 16)), "NaN or infinite"),
        (np.zeros((0, 16)), np.zeros((0, 16)), "empty"),
        (np.zeros(16), np.zeros(16), "2D"),
        (np.zeros((2, 16, 16)), np.zeros((2, 16, 16)), "one slice at a time"),
        (np.ones((16, 16)), np.arange(256.0).reshape(16, 16), "constant"),
        (np.arange(256.0).reshape(16, 16), np.full((16, 16), 3.0), "constant"),
        (np.arange(24.0).reshape(4, 6), np.arange(24.0).reshape(4, 6), "at least 8"),
        (np.ones((16, 16), complex), np.ones((16, 16)), "real-valued"),
        (np.array([["a"] * 16] * 16), np.ones((16, 16)), "numeric"),
    ],
)
def test_bad_input_is_refused(a, b, match):
    with pytest.raises(ValueError, match=match):
        frc_curve(a, b)


def test_bad_options_are_refused(rng):
    a = rng.standard_normal((16, 16))
    with pytest.raises(ValueError, match="window"):
        frc_curve(a, a, window="hamming")
    with pytest.raises(ValueError, match="tukey_alpha"):
        frc_curve(a, a, window="tukey", tukey_alpha=2)
    with pytest.raises(ValueError, match="pixel size"):
        frc_curve(a, a, pixel_size=0)


def test_reference_free_resolution_from_even_and_odd_slices(rng):
    # every slice: the same band-limited structure plus independent noise, as two acquisitions
    cutoff, shape = 40, (256, 256)
    signal = shaped_signal(rng, shape, lambda r: (r <= cutoff).astype(float))
    stack = np.stack([signal + 0.3 * rng.standard_normal(shape) for _ in range(7)])
    even, odd = even_odd_halves(stack)
    assert even.shape == odd.shape == (3, *shape)
    np.testing.assert_array_equal(odd[1], stack[3])
    result = reference_free_resolution(even, odd, compared="even vs odd slices", pixel_size=10.0, window=None)
    assert result.n_pairs == 3 and result.compared == "even vs odd slices"
    assert result.curve.label == "even vs odd slices" and result.resolution.threshold == "half-bit"
    np.testing.assert_array_equal(result.curve.n_pixels, 3 * frc_curve(even[0], odd[0]).n_pixels)
    assert cutoff < result.resolution.ring <= cutoff + 1
    assert "even vs odd slices" in result.describe()
    single = reference_free_resolution(stack[0], stack[1], compared="two acquisitions", threshold="1/7", window=None)
    assert single.n_pairs == 1 and cutoff < single.resolution.ring <= cutoff + 1
    # the default Hann window spreads the sharp cutoff over a couple of rings, no more
    windowed = reference_free_resolution(even, odd, compared="even vs odd slices")
    assert windowed.curve.window == "hann" and abs(windowed.resolution.ring - cutoff) < 3


def test_reference_free_default_window_sees_through_the_border(rng):
    # two noisy acquisitions of a non-periodic field (a ramp plus structure up to ring 16): without a
    # window the shared border step correlates far beyond the band (its share falls only as 1/r^3);
    # the default Hann window resolves ring ~16
    shape = (128, 128)
    signal = np.linspace(0, 10, shape[1])[None, :] + shaped_signal(rng, shape, lambda r: (r <= 16) * 3.0)
    a, b = noisy_pair(rng, signal, 1.0)
    bare = reference_free_resolution(a, b, compared="two acquisitions", window=None).resolution
    assert not bare.reached or bare.ring > 25
    assert abs(reference_free_resolution(a, b, compared="two acquisitions").resolution.ring - 16) < 3


def test_shared_noise_makes_the_reference_free_estimate_optimistic(rng):
    # f(y) vs f(y') with y' = y + extra noise: y's noise is common to both and correlates at every
    # frequency, so the curve never reaches the threshold; independent halves resolve the cutoff.
    signal = shaped_signal(rng, (128, 128), lambda r: (r <= 20).astype(float))
    y = signal + 0.3 * rng.standard_normal(signal.shape)
    extra = y + 0.3 * rng.standard_normal(y.shape)
    shared = reference_free_resolution(y, extra, compared="y vs y + noise", window=None)
    independent = reference_free_resolution(*noisy_pair(rng, signal, 0.3), compared="two acquisitions", window=None)
    assert not shared.resolution.reached
    assert independent.resolution.reached and independent.resolution.ring < 22
    assert shared.curve.frc[30:].mean() > 0.5 > independent.curve.frc[30:].mean()


def test_reference_free_input_errors(rng):
    a = rng.standard_normal((3, 16, 16))
    with pytest.raises(ValueError, match="compared"):
        reference_free_resolution(a, a, compared=" ")
    with pytest.raises(ValueError, match="same shape"):
        reference_free_resolution(a, a[:2], compared="x")
    with pytest.raises(ValueError, match="no slices"):
        reference_free_resolution(a[:0], a[:0], compared="x")
    with pytest.raises(ValueError, match="at least two slices"):
        even_odd_halves(a[:1])
    with pytest.raises(ValueError, match="stack"):
        even_odd_halves(a[0])


def test_reference_free_job_scores_the_current_pair_first_and_pools_as_the_function(rng):
    """The Compare panel's reference-free job: pair by pair as events, pooled as reference_free_resolution."""
    signal = shaped_signal(rng, (64, 64), lambda r: (r <= 12).astype(float))
    stack = np.stack([signal + 0.3 * rng.standard_normal(signal.shape) for _ in range(7)])
    events = list(iter_reference_free(stack, compared="even vs odd", pixel_size=10.0, current=3))
    assert [e.kind for e in events] == ["start", "slice", "slice", "slice", "done"]
    assert [e.payload.z for e in events[1:4]] == [2, 0, 4] and events[1].unit == "slice pair"
    pooled = events[-1].payload
    assert pooled.scope == "stack" and pooled.slices == 3
    expected = reference_free_resolution(*even_odd_halves(stack), compared="even vs odd", pixel_size=10.0)
    result = pooled.results["even vs odd"]
    np.testing.assert_array_equal(result.curve.frc, expected.curve.frc)
    assert result.resolution == expected.resolution and result.frc_mean == expected.frc_mean
    assert result.n_pairs == expected.n_pairs == 3
    assert pool_pairs([events[i].payload.results["even vs odd"] for i in (2, 1, 3)]).resolution == result.resolution
    # two acquisitions: slice z with slice z; only the current pair
    other = stack + 0.3 * rng.standard_normal(stack.shape)
    one = list(iter_reference_free(stack, other, compared="two", current=5, whole_stack=False))
    assert [e.kind for e in one] == ["start", "slice", "done"] and one[-1].payload.z == 5
    alone = reference_free_resolution(stack[5], other[5], compared="two")
    assert one[-1].payload.results["two"].resolution == alone.resolution
    with pytest.raises(ValueError, match="at least two slices"):
        list(iter_reference_free(stack[:1], compared="x"))
    with pytest.raises(ValueError, match="same shape"):
        list(iter_reference_free(stack, other[:3], compared="x"))


def test_curve_is_a_frozen_record(rng):
    curve = frc_curve(rng.standard_normal((16, 16)), rng.standard_normal((16, 16)))
    assert isinstance(curve, FRCCurve) and curve.pixel_size_nm is None and curve.frequency_per_nm is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        curve.label = "x"
