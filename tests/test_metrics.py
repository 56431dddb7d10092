"""PSNR and SSIM against scikit-image, and the slice-by-slice stack evaluation."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from skimage.filters import gaussian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_emsr.errors import Hint, HintedValueError
from napari_emsr.metrics import (
    DataRange,
    EvaluationOptions,
    ScoringError,
    StackEvaluation,
    common_region,
    evaluate_stack,
    find_data_range,
    frc_curve,
    frc_pool,
    frc_resolution,
    iter_compare,
    iter_evaluate_stack,
    pool_stack,
    psnr,
    resolve_data_range,
    ssim,
)


@pytest.fixture
def pair_u8(rng):
    reference = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    test = np.clip(reference + rng.normal(0, 12, reference.shape), 0, 255).astype(np.uint8)
    return reference, test


def test_psnr_matches_scikit_image_and_the_formula(pair_u8, rng):
    reference, test = pair_u8
    expected = peak_signal_noise_ratio(reference, test, data_range=255)
    assert psnr(reference, test) == pytest.approx(expected, rel=1e-12)
    mse = np.mean((reference.astype(float) - test) ** 2)
    assert psnr(reference, test) == pytest.approx(10 * np.log10(255**2 / mse))
    a, b = rng.random((32, 40)), rng.random((32, 40))
    assert psnr(a, b, data_range=1.0) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0))
    # a stack: one MSE over all voxels
    stack_a, stack_b = np.stack([a, a]), np.stack([b, a])
    assert psnr(stack_a, stack_b, data_range=1.0) == pytest.approx(10 * np.log10(1 / np.mean((stack_a - stack_b) ** 2)))
    assert psnr(a, a, data_range=1.0) == float("inf")


def test_data_range_comes_from_the_dtype_or_is_required(rng):
    assert resolve_data_range(np.zeros(3, np.uint8)) == 255.0
    assert resolve_data_range(np.zeros(3, np.uint16)) == 65535.0
    assert resolve_data_range(np.zeros(3, np.float32), 2.5) == 2.5
    a = rng.integers(0, 65536, (32, 32), dtype=np.uint16)
    b = np.clip(a + rng.normal(0, 500, a.shape), 0, 65535).astype(np.uint16)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=65535))
    with pytest.raises(ValueError, match="data_range is required"):
        psnr(rng.random((16, 16)), rng.random((16, 16)))
    with pytest.raises(ValueError, match="positive"):
        ssim(a, b, data_range=0)


def test_ssim_matches_scikit_image(pair_u8, em_slice):
    reference, test = pair_u8
    wang = structural_similarity(
        reference, test, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(reference, test) == pytest.approx(wang, rel=1e-12)
    uniform = structural_similarity(reference, test, data_range=255)
    assert ssim(reference, test, gaussian_weights=False) == pytest.approx(uniform, rel=1e-12)
    blurred = gaussian(em_slice, sigma=1.0, preserve_range=True)
    expected = structural_similarity(
        em_slice.astype(float), blurred, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(em_slice, blurred) == pytest.approx(expected, rel=1e-12)
    assert ssim(em_slice, em_slice) == pytest.approx(1.0)
    assert 0.3 < ssim(em_slice, blurred) < 0.95
    assert abs(ssim(em_slice, blurred) - ssim(em_slice, blurred, gaussian_weights=False)) > 0.005  # the option matters


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.zeros((16, 16), np.uint8), np.zeros((16, 17), np.uint8), "same shape"),
        (np.zeros((16, 16), np.uint8), np.full((16, 16), np.nan), "NaN"),
        (np.zeros(16, np.uint8), np.zeros(16, np.uint8), "2D"),
        (np.zeros((0, 16), np.uint8), np.zeros((0, 16), np.uint8), "empty"),
    ],
)
def test_bad_input_is_refused(a, b, match):
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=match):
            metric(a, b)


def test_ssim_wants_2d_images_of_a_useful_size():
    with pytest.raises(ValueError, match="one slice at a time"):
        ssim(np.zeros((2, 16, 16), np.uint8), np.zeros((2, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="7 x 7"):
        ssim(np.zeros((5, 16), np.uint8), np.zeros((5, 16), np.uint8))


@pytest.fixture
def stacks(rng):
    reference = rng.integers(0, 256, (3, 40, 48), dtype=np.uint8)
    prediction = np.clip(reference + rng.normal(0, 20, reference.shape), 0, 255).astype(np.uint8)
    return reference, prediction


def test_stack_evaluation_is_the_per_slice_metrics(stacks):
    reference, prediction = stacks
    options = EvaluationOptions(data_range=255, pixel_size=8.0)
    events = list(iter_evaluate_stack(reference, prediction, options, label="noisy"))
    assert [(e.job, e.kind, e.done, e.total, e.unit) for e in events] == [
        ("evaluate", "start", 0, 3, "slice"), ("evaluate", "slice", 1, 3, "slice"),
        ("evaluate", "slice", 2, 3, "slice"), ("evaluate", "slice", 3, 3, "slice"), ("evaluate", "done", 3, 3, "slice"),
    ]  # fmt: skip
    assert events[0].payload == DataRange(255.0, "given")
    assert events[2].payload.psnr.tolist() == [psnr(reference[1], prediction[1])]  # the slice's own scores
    result = events[-1].payload
    assert isinstance(result, StackEvaluation) and result.label == "noisy"
    again = evaluate_stack(reference, prediction, data_range=255, pixel_size=8.0, label="noisy")
    np.testing.assert_array_equal(again.psnr, result.psnr)
    assert again.resolution == result.resolution
    for z in range(3):
        assert result.psnr[z] == psnr(reference[z], prediction[z])
        assert result.ssim[z] == ssim(reference[z], prediction[z])
        assert result.frc_mean[z] == frc_curve(reference[z], prediction[z]).mean
    pooled = frc_pool([frc_curve(reference[z], prediction[z], pixel_size=8.0) for z in range(3)])
    np.testing.assert_allclose(result.curve.frc, pooled.frc)
    hann = [frc_curve(reference[z], prediction[z], window="hann", pixel_size=8.0) for z in range(3)]
    np.testing.assert_allclose(result.resolution_curve.frc, frc_pool(hann).frc)
    assert result.resolution == frc_resolution(frc_pool(hann))
    assert result.resolutions[2] == frc_resolution(hann[2])
    summary = result.summary()
    assert summary["psnr"] == pytest.approx(np.mean(result.psnr)) and summary["slices"] == 3
    assert summary["ssim_std"] == pytest.approx(np.std(result.ssim))
    assert summary["frc_resolution_nm"] == result.resolution.resolution_nm
    assert [s["z"] for s in summary["per_slice"]] == [0, 1, 2]
    assert summary["per_slice"][1]["frc_resolution_px"] == result.resolutions[1].resolution_px
    assert summary["frc_window"] is None and summary["frc_resolution_window"] == "hann"
    paper = evaluate_stack(reference, prediction, data_range=255, pixel_size=8.0, resolution_window=None)
    assert paper.resolution_curve is paper.curve and paper.resolution == frc_resolution(pooled)
    tukey = evaluate_stack(reference, prediction, data_range=255, window="tukey")
    assert tukey.frc_mean[0] == frc_curve(reference[0], prediction[0], window="tukey").mean


def test_lazy_stacks_give_the_same_numbers(stacks):
    reference, prediction = stacks
    eager = evaluate_stack(reference, prediction, data_range=255)
    lazy = evaluate_stack(da.from_array(reference, chunks=(1, 40, 48)), da.from_array(prediction), data_range=255)
    np.testing.assert_array_equal(eager.psnr, lazy.psnr)
    np.testing.assert_array_equal(eager.frc_mean, lazy.frc_mean)
    single = evaluate_stack(reference[0], prediction[0], data_range=255)
    assert single.psnr.shape == (1,) and single.psnr[0] == eager.psnr[0]


def test_crop_to_the_common_region(stacks):
    reference, prediction = stacks
    with pytest.raises(ValueError, match="slice shapes differ.*crop"):
        evaluate_stack(reference, prediction[:, :-2, 1:], data_range=255)
    top_left = evaluate_stack(reference, prediction[:, :-2, :-3], data_range=255, crop="top-left")
    assert top_left.psnr[0] == psnr(reference[0, :-2, :-3], prediction[0, :-2, :-3])
    centre = evaluate_stack(reference, prediction[:, 1:-1, 1:-2], data_range=255, crop="centre")
    assert centre.psnr[0] == psnr(reference[0, 1:-1, 1:-2], prediction[0, 1:-1, 1:-2])
    cuts = ((slice(1, 9), slice(0, 19)), (slice(0, 8), slice(0, 19)))
    assert common_region((10, 20), (8, 19), anchor="centre") == cuts
    with pytest.raises(ValueError, match="more than a border"):
        common_region((100, 100), (50, 100))
    with pytest.raises(ValueError, match="anchor"):
        common_region((10, 10), (10, 10), anchor="middle")
    with pytest.raises(ValueError, match="crop must be None or one of"):
        evaluate_stack(reference, prediction, crop="middle")
    with pytest.raises(TypeError):
        evaluate_stack(reference, prediction, progress=print)  # an unknown option


def test_stack_errors(stacks):
    reference, prediction = stacks
    with pytest.raises(ValueError, match="3 slice.*has 2"):
        evaluate_stack(reference, prediction[:2], data_range=255)
    with pytest.raises(ValueError, match="2D image or a"):
        evaluate_stack(reference[None], prediction[None], data_range=255)


def test_the_data_range_rule_for_uint8_uint16_and_float(rng):
    """One rule: a given range, else the integer dtype's, else the float pixels' max - min (read plane by plane)."""
    assert find_data_range(np.uint8) == DataRange(255.0, "from the reference's dtype (uint8)")
    assert find_data_range(np.uint16, lambda: pytest.fail("an integer dtype needs no pixels")).value == 65535.0
    assert find_data_range(np.uint16, given=4095).value == 4095.0 and find_data_range(np.uint16, given=4095).given
    stack = rng.random((3, 16, 16)).astype(np.float32) * 2 - 0.5
    found = find_data_range(stack.dtype, lambda: stack)  # the training helper's call: planes of a stack
    assert found.value == pytest.approx(float(stack.max() - stack.min())) and not found.given
    assert "float32 reference: its max - min" in found.source
    assert found.describe() == f"{found.source}; pass data_range=L to override"
    # psnr, evaluate_stack and iter_compare all follow it
    assert resolve_data_range(np.zeros(3, np.uint16)) == find_data_range(np.uint16).value
    scored = evaluate_stack(stack, stack[::-1].copy())
    assert scored.psnr[0] == pytest.approx(psnr(stack[0], stack[2], data_range=found.value), rel=1e-12)
    with pytest.raises(HintedValueError, match="data_range is required for a float64 reference") as caught:
        find_data_range(np.float64)
    assert caught.value.hints[0].option == "data_range"
    with pytest.raises(ValueError, match="constant: it has no data range: pass data_range=L to set one"):
        find_data_range(np.float32, lambda: [np.ones((4, 4), np.float32)] * 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        find_data_range(np.float32, lambda: [np.array([0.0, np.nan], np.float32)])
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive finite"):
            find_data_range(np.uint8, given=bad)


def test_mismatched_shapes_give_hints_not_flags(stacks):
    reference, prediction = stacks
    with pytest.raises(ScoringError) as caught:
        evaluate_stack(reference, prediction[:, :-2, 1:], data_range=255, label="noisy")
    exc = caught.value
    assert exc.label == "noisy" and isinstance(exc, ValueError)
    assert exc.hints == (
        Hint("crop", "top-left", "if they differ only by a border at the bottom and right"),
        Hint("crop", "centre", "if they differ by a border all round"),
    )
    assert str(exc) == (
        "slice shapes differ: reference (40, 48), noisy (38, 47): pass crop='top-left' if they differ only by a "
        "border at the bottom and right, or pass crop='centre' if they differ by a border all round"
    )
    assert "--" not in str(exc)
    # an error of the metrics on one slice names the method and the slice
    tiny = np.zeros((3, 6, 6), np.uint8)
    with pytest.raises(ScoringError, match="prediction, slice 0: ") as caught:
        evaluate_stack(tiny, tiny + 1, data_range=255)
    assert caught.value.label == "prediction"


def test_compare_scores_the_current_slice_first_and_pools_as_evaluate_stack(stacks):
    reference, prediction = stacks
    noisier = np.clip(prediction.astype(int) + 9, 0, 255).astype(np.uint8)
    methods = {"a": prediction, "b": noisier}
    events = list(iter_compare(reference, methods, EvaluationOptions(pixel_size=8.0), current=2))
    assert [e.kind for e in events] == ["start", "slice", "slice", "slice", "done"]
    assert [e.payload.z for e in events[1:4]] == [2, 0, 1] and events[1].payload.scope == "slice"
    assert events[0].payload.value == 255.0 and events[-1].payload.data_range.value == 255.0
    assert events[-1].fraction == 1.0 and events[1].message == "1/3 slices"
    stack = events[-1].payload
    assert stack.scope == "stack" and stack.slices == 3 and list(stack.results) == ["a", "b"]
    for label, other in (("a", prediction), ("b", noisier)):
        alone = evaluate_stack(reference, other, pixel_size=8.0, label=label)
        pooled = stack.results[label]
        np.testing.assert_array_equal(pooled.psnr, alone.psnr)  # in slice order, whatever the order scored
        np.testing.assert_array_equal(pooled.resolution_curve.frc, alone.resolution_curve.frc)
        assert pooled.resolution == alone.resolution and pooled.summary() == alone.summary()
    # the slices pooled by hand: the same function
    parts = [events[i].payload.results["a"] for i in (2, 3, 1)]
    assert pool_stack(parts).summary() == stack.results["a"].summary()
    only = list(iter_compare(reference, {"a": prediction}, whole_stack=False, current=1))
    assert [e.kind for e in only] == ["start", "slice", "done"]
    assert only[-1].payload.scope == "slice" and only[-1].payload.z == 1
