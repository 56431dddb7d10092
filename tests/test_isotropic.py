"""Isotropic reconstruction: section sampling, the axial training strategy, reconstruction and its files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_emsr.config import ConfigError, EMSRConfig, TrainingConfig
from napari_emsr.errors import HintedValueError
from napari_emsr.isotropic import cubic_resample, isotropic, iter_isotropic, linear_resample, sample_sections
from napari_emsr.isotropic.reconstruct import IsotropicFactorWarning, resolve_z_factor
from napari_emsr.isotropic.sampling import (
    SectionSampling,
    axial_degrade,
    isotropic_depth,
    output_positions,
    profile_kernel,
)
from napari_emsr.isotropic.train import _start, train_isotropic
from napari_emsr.model.emsr import build_emsr
from napari_emsr.model_io import load_model, save_model
from napari_emsr.training.sampler import PatchSampler, Volume3D

from .conftest import TINY


@pytest.fixture(scope="module")
def fib_stack(data_dir) -> np.ndarray:
    """40 consecutive real FIB-SEM slices (10 nm isotropic), 64 x 64."""
    from skimage.io import imread

    files = sorted((data_dir / "training_sample1").glob("*.png"), key=lambda p: int(p.stem.split(".")[1]))[:40]
    return np.stack([imread(f)[100:164, 100:164] for f in files])


@pytest.fixture(scope="module")
def anisotropic(fib_stack) -> np.ndarray:
    """fib_stack sampled every 2.5 slices: 16 sections of 64 x 64, uint8."""
    return np.clip(np.rint(sample_sections(fib_stack.astype(np.float32), 2.5, seed=3)), 0, 255).astype(np.uint8)


def _tiny(scale: int = 1, residual: int = 1, seed: int = 0, trained: bool = True):
    torch.manual_seed(seed)
    model = build_emsr(EMSRConfig(scale=scale, global_residual=residual, **TINY))
    model.metadata = model.metadata.updated(trained=trained, input_pixel_size_nm=10.0)
    return model.eval()


def _cubic_volume(volume: np.ndarray, factor: float) -> np.ndarray:
    depth = isotropic_depth(volume.shape[0], factor)
    planes = volume.astype(np.float32).transpose(1, 0, 2)
    return cubic_resample(planes, output_positions(range(depth), factor)).transpose(1, 0, 2)


# -- sampling -----------------------------------------------------------------------------------


def test_cubic_resampling_keeps_the_samples_and_reproduces_quadratics():
    rows = np.arange(10, dtype=np.float32)
    samples = np.stack([rows, rows**2 / 10], axis=1)[None]  # (1, 10, 2): a line and a parabola along rows
    np.testing.assert_array_equal(cubic_resample(samples, np.arange(10.0)), samples)
    u = np.array([2.25, 3.5, 6.8])
    out = cubic_resample(samples, u)[0]
    np.testing.assert_allclose(out[:, 0], u, atol=1e-5)
    # Keys' cubic reproduces polynomials up to degree 2 exactly
    np.testing.assert_allclose(out[:, 1], u**2 / 10, atol=1e-4)
    np.testing.assert_allclose(linear_resample(samples, u)[0][:, 0], u, atol=1e-5)


def test_the_isotropic_grid_never_extrapolates_past_the_last_section():
    assert isotropic_depth(16, 2.5) == 38  # rows 0..37 at positions 0..14.8 of 16 sections
    assert isotropic_depth(10, 3.0) == 28
    assert output_positions(range(38), 2.5)[-1] <= 15
    with pytest.raises(ValueError, match="no slices"):
        isotropic_depth(0, 2.0)


def test_section_profiles_are_normalised_and_a_fractional_box_has_partial_ends():
    np.testing.assert_allclose(profile_kernel(3.0), [1 / 3] * 3, rtol=1e-6)
    # a box 2.5 px wide centred on a pixel covers it whole and three quarters of each neighbour
    np.testing.assert_allclose(profile_kernel(2.5), [0.75 / 2.5, 1 / 2.5, 0.75 / 2.5], rtol=1e-6)
    gauss = profile_kernel(4.0, "gaussian")
    assert np.isclose(gauss.sum(), 1) and gauss.argmax() == len(gauss) // 2
    with pytest.raises(ValueError, match="profile"):
        profile_kernel(2.0, "triangle")


def test_simulated_sections_average_the_slices_of_their_thickness_and_keep_one_slices_noise(fib_stack):
    volume = fib_stack.astype(np.float32)
    sections = sample_sections(volume, 3.0, noise_sigma=0)
    assert sections.shape == (14, 64, 64)  # z = 0, 3, ..., 39
    for k in (1, 5, 12):
        np.testing.assert_allclose(sections[k], volume[3 * k - 1 : 3 * k + 2].mean(axis=0), atol=1e-3)
    flat = np.full((30, 64, 64), 100.0, np.float32) + np.random.default_rng(0).normal(0, 6.0, (30, 64, 64))
    noisy = sample_sections(flat.astype(np.float32), 3.0, noise_sigma=6.0, seed=1)
    assert noisy[1:-1].std() == pytest.approx(6.0, rel=0.05)  # not 6 / sqrt(3): one measurement's noise


def test_axial_degradation_samples_the_rows_only():
    x = torch.arange(40, dtype=torch.float32).repeat(40, 1)[None, None] / 40  # varies along columns only
    y = axial_degrade(x, 3.0, phase=1.3)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)  # nothing changes along rows
    x_rows = x.transpose(-1, -2).contiguous() ** 2
    y_rows = axial_degrade(x_rows, 3.0, phase=1.3)
    assert torch.allclose(y_rows[..., :1], y_rows)  # each row stays constant
    assert (y_rows - x_rows)[..., 4:-4, :].abs().max() > 1e-4  # but the rows were resampled


def test_the_section_sampling_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="> 1"):
        SectionSampling(1.0)
    with pytest.raises(ValueError, match="below"):
        SectionSampling(3.0, factor_max=2.0)
    assert SectionSampling(3.0, 5.0).typical == pytest.approx(np.sqrt(15))


# -- the axial strategy -------------------------------------------------------------------------


def test_the_axial_strategy_needs_its_z_factor():
    with pytest.raises(ConfigError, match="z_factor"):
        TrainingConfig(strategy="axial")
    with pytest.raises(ConfigError, match="axial"):
        TrainingConfig(strategy="real", z_factor=3.0)
    with pytest.raises(ConfigError, match="section_profile"):
        TrainingConfig(strategy="axial", z_factor=3.0, section_profile="cone")
    with pytest.raises(ConfigError, match="scale 1"):
        EMSRConfig(scale=3, global_residual=1)


def test_axial_patches_keep_the_sampled_axis_along_the_rows_and_learn_both_in_plane_axes():
    # a volume whose slices vary along x only: a patch turned a quarter has rows that vary instead
    stripes = np.tile((np.arange(96) % 7 * 30).astype(np.float32), (2, 96, 1))
    sampling = SectionSampling(3.0, noise_sigma=0.0)
    sampler = PatchSampler([Volume3D(stripes, [0, 1], 0, 255)], None, 1, 24, "axial", (0.0, 0.0), degradation=sampling)
    untouched = resampled = 0
    for _ in range(40):
        y, x = sampler.sample(1)
        if torch.allclose(x[..., :1, :], x):  # constant along the rows' axis: sampling rows changes nothing
            torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
            untouched += 1
        else:  # varies along the rows: each row stays constant, rows are resampled
            assert torch.allclose(x[..., :1], x) and torch.allclose(y[..., :1], y, atol=1e-5)
            resampled += 1
    assert untouched > 5 and resampled > 5


def test_an_untrained_isotropic_network_is_cubic_interpolation():
    model = _start("em-x3", 10.0)
    x = torch.rand(2, 1, 30, 41)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), x, atol=0, rtol=0)
    assert model.config.scale == 1 and model.config.global_residual == 1 and not model.metadata.trained
    assert model.config.preset_name == "lite"  # what em-x3 is; the residual does not make it a custom config


def test_training_on_the_volumes_own_xy_slices_writes_a_scale_1_model_that_knows_its_z_factor(
    anisotropic, tmp_path, one_thread
):
    out = tmp_path / "iso.safetensors"
    config = TrainingConfig(steps=3, batch=1, patch=24, val_every=3, val_crop=32)
    best = train_isotropic(anisotropic, out, z_factor=2.5, config=config, pixel_size=(25.0, 10.0, 10.0))
    assert best is not None and best["step"] == 3
    model = load_model(out)
    assert model.config.scale == 1 and model.config.global_residual == 1
    assert model.metadata.trained and model.metadata.input_pixel_size_nm == 10.0
    sampling = model.metadata.provenance["section_sampling"]
    assert sampling["factor"] == 2.5 and sampling["profile"] == "box" and sampling["noise_sigma"] > 0
    assert model.metadata.provenance["strategy"] == "axial"


# -- reconstruction -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cubic_model(tmp_path_factory):
    """The isotropic network before training (correction zero), marked trained so that it runs quietly."""
    model = _start("em-x3", 10.0)
    model.metadata = model.metadata.updated(trained=True, provenance={"section_sampling": {"factor": 2.5}})
    path = tmp_path_factory.mktemp("iso") / "cubic.safetensors"
    save_model(model, path)
    return path


def test_reconstruction_lies_on_the_isotropic_grid_for_a_z_factor_that_is_not_whole(anisotropic, cubic_model):
    volume = anisotropic.astype(np.float32)
    result = isotropic(volume, cubic_model, z_factor=2.5, device="cpu", precision="fp32", intensity_range=(0, 255),
                       pixel_size=(25.0, 10.0, 10.0))
    expected = _cubic_volume(volume, 2.5)
    assert result.shape == (38, 64, 64) == expected.shape
    np.testing.assert_allclose(result, expected, atol=1e-3)  # a zero correction: exactly cubic, both views


def test_blocks_give_the_whole_volume_result(anisotropic):
    model = _tiny(seed=2, trained=True)
    model.metadata = model.metadata.updated(provenance={"section_sampling": {"factor": 2.5}})
    volume = anisotropic.astype(np.float32)
    kwargs = dict(z_factor=2.5, device="cpu", precision="fp32", overlap="exact", tile=32, intensity_range=(0, 255),
                  pixel_size=(25.0, 10.0, 10.0))
    whole = isotropic(volume, model, **kwargs)
    events = list(iter_isotropic(volume, model, blocks=(10, 20), **kwargs))
    summary = events[0].payload
    assert (summary.slab, summary.band) == (10, 20) and summary.context >= 16  # 4 slabs x 4 bands
    blocked = events[-1].payload
    np.testing.assert_allclose(blocked, whole, atol=2e-4)
    assert not np.allclose(whole, _cubic_volume(volume, 2.5), atol=1e-2)  # the network did change the volume
    slices = [e.payload.index for e in events if e.kind == "slice"]
    assert sorted(slices) == list(range(38))


def test_one_view_differs_from_the_fused_views(anisotropic):
    model = _tiny(seed=4)
    model.metadata = model.metadata.updated(provenance={"section_sampling": {"factor": 2.5}})
    kwargs = dict(z_factor=2.5, device="cpu", precision="fp32", tile=32, intensity_range=(0, 255),
                  pixel_size=(25.0, 10.0, 10.0))
    volume = anisotropic[:8].astype(np.float32)
    xz, yz, both = (isotropic(volume, model, views=v, **kwargs) for v in ("xz", "yz", "xz+yz"))
    np.testing.assert_allclose(both, (xz + yz) / 2, atol=1e-4)
    assert not np.allclose(xz, yz, atol=1e-3)


def test_an_ome_zarr_result_has_isotropic_voxels_and_resumes_after_an_interruption(anisotropic, cubic_model, tmp_path):
    from napari_emsr.io import open_volume

    out = tmp_path / "iso.ome.zarr"
    kwargs = dict(z_factor=2.5, device="cpu", precision="fp32", pixel_size=(25.0, 10.0, 10.0), blocks=(8, 64))
    events = iter_isotropic(anisotropic, cubic_model, output=out, **kwargs)
    written = 0
    for event in events:
        written += event.kind == "slice"
        if written == 12:
            break
    events.close()
    assert not out.exists()  # nothing under the final name until it is complete
    resumed = list(iter_isotropic(anisotropic, cubic_model, output=out, resume=True, **kwargs))
    assert 0 < resumed[0].payload.slices_reused < 38
    assert sum(e.kind == "slice" for e in resumed) == 38 - resumed[0].payload.slices_reused
    with open_volume(out) as vol:
        assert vol.shape == (38, 64, 64)
        assert vol.pixel_size_nm == pytest.approx((10.0, 10.0, 10.0))
        data = np.asarray(vol.data)
    uninterrupted = isotropic(anisotropic, cubic_model, **kwargs)
    np.testing.assert_array_equal(data, uninterrupted)


def test_an_ome_tiff_result_records_its_isotropic_pixel_size(anisotropic, cubic_model, tmp_path):
    from napari_emsr.io import open_volume

    out = tmp_path / "iso.ome.tif"
    isotropic(anisotropic[:6], cubic_model, output=out, device="cpu", pixel_size=(25.0, 10.0, 10.0))
    with open_volume(out) as vol:
        assert vol.shape == (isotropic_depth(6, 2.5), 64, 64)
        assert vol.pixel_size_nm == pytest.approx((10.0, 10.0, 10.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iso.ome.tif"]  # no temporary left


def test_the_z_factor_comes_from_the_pixel_sizes_or_is_asked_for():
    assert resolve_z_factor(None, (50.0, 10.0, 10.0)) == (5.0, "pixel sizes 50 / 10 nm")
    assert resolve_z_factor(3.3, None)[0] == 3.3
    with pytest.raises(HintedValueError, match="z_factor=K"):
        resolve_z_factor(None, (None, 10.0, 10.0))
    with pytest.raises(HintedValueError, match="not coarser in z"):
        resolve_z_factor(None, (8.0, 8.0, 8.0))


def test_a_super_resolution_model_is_refused_with_what_to_use_instead(anisotropic):
    with pytest.raises(HintedValueError, match="scale-1 network"):
        isotropic(anisotropic, _tiny(scale=3, residual=0), z_factor=2.5, device="cpu")


def test_a_model_trained_for_another_z_factor_is_warned_about(anisotropic, cubic_model):
    with pytest.warns(IsotropicFactorWarning, match="trained for z factors 2.5"):
        isotropic(anisotropic[:4], cubic_model, z_factor=6.0, device="cpu", pixel_size=(60.0, 10.0, 10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", IsotropicFactorWarning)
        isotropic(anisotropic[:4], cubic_model, z_factor=2.7, device="cpu", pixel_size=(27.0, 10.0, 10.0))  # within 20 %


def test_options_that_would_turn_z_into_x_are_refused(anisotropic, cubic_model):
    with pytest.raises(HintedValueError, match="self-ensemble"):
        isotropic(anisotropic, cubic_model, z_factor=2.5, self_ensemble=True)
    with pytest.raises(ValueError, match="views"):
        isotropic(anisotropic, cubic_model, z_factor=2.5, views="xy")
    with pytest.raises(HintedValueError, match="at least 2 slices"):
        isotropic(anisotropic[:1], cubic_model, z_factor=2.5)
