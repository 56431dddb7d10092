"""Degradations, the EMSR loss, the patch sampler and validation-slice specs."""

import numpy as np
import pytest
import torch

from napari_emsr.resample import bicubic_downsample
from napari_emsr.training.data import parse_slices
from napari_emsr.training.degrade import em_like, gaussian_blur, synthetic_i, synthetic_ii
from napari_emsr.training.losses import emsr_loss
from napari_emsr.training.sampler import PatchSampler, Volume3D, noisier


# -- degradations -----------------------------------------------------------------------------------
def test_blur_keeps_mean_and_zero_sigma_is_identity(em_slice):
    x = torch.from_numpy(em_slice[:60, :60] / 255.0).float()[None, None].repeat(2, 1, 1, 1)
    out = gaussian_blur(x, torch.tensor([0.0, 2.0]))
    assert torch.equal(out[0], x[0])
    assert abs(out[1].mean() - x[1].mean()) < 0.01 and out[1].std() < x[1].std()


def test_synthetic_ii_noise_levels_follow_the_paper():
    """On a flat image, LR noise = HR noise (20..40) shrunk by down-sampling plus LR noise (5..15)."""
    flat = torch.full((64, 1, 96, 96), 0.5)
    gen = torch.Generator().manual_seed(0)
    lr = synthetic_ii(flat, 3, gen, ranges={"blur": (0.0, 0.0)})
    assert lr.shape == (64, 1, 32, 32)
    sigma = lr.std(dim=(1, 2, 3)) * 255
    # antialiased bicubic /3 leaves about 1/3 .. 1/2.5 of white noise's sigma
    low, high = np.hypot(20 / 3.2, 5), np.hypot(40 / 2.5, 15)
    assert low * 0.9 < sigma.min() and sigma.max() < high * 1.1
    assert sigma.max() - sigma.min() > 3  # parameters are drawn per image


def test_synthetic_i_is_bicubic(em_slice):
    hr = em_slice[:90, :90].astype(np.float32) / 255
    lr = synthetic_i(torch.from_numpy(hr)[None, None], 3)[0, 0].numpy()
    assert np.allclose(lr, bicubic_downsample(hr, 3, clip=False), atol=1e-6)


def test_em_like_is_noisy_and_unbiased(em_slice):
    hr = torch.from_numpy(em_slice[:120, :120] / 255.0).float()[None, None]
    lr = em_like(hr, 3, torch.Generator().manual_seed(1))
    assert lr.shape == (1, 1, 40, 40)
    assert abs(lr.mean() - hr.mean()) < 0.02
    clean = torch.nn.functional.avg_pool2d(gaussian_blur(hr, 1.2), 3)
    assert 0.02 < (lr - clean).std() < 0.15  # noise of a few grey levels to ~30 on 0..255


# -- loss (eq. 16) --------------------------------------------------------------------------------
def test_loss_terms_are_eq_16():
    x = torch.zeros(1, 1, 2, 2)
    a = torch.full((1, 1, 2, 2), 1.0)
    b = torch.full((1, 1, 2, 2), 3.0)
    total, terms = emsr_loss(a, x, b, norm="l1", weights=(1, 2, 3))
    assert terms["ref"] == 1 and terms["noisier_ref"] == 3 and terms["consistency"] == 2
    assert float(total) == 1 + 2 * 3 + 3 * 2
    total, terms = emsr_loss(a, x, b, norm="l2", weights=(1, 1, 1))
    assert float(total) == 1 + 9 + 4
    total, terms = emsr_loss(a, x, None)
    assert float(total) == 1 and set(terms) == {"ref", "total"}
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        emsr_loss(a, x, norm="l3")


def test_noisier_copy_noise_range():
    y = torch.zeros(500, 1, 16, 16)
    sigma = (noisier(y, (0.0, 5.0), torch.Generator().manual_seed(0)) - y).std(dim=(1, 2, 3)) * 255
    assert sigma.max() < 5.5 and sigma.min() < 0.5 and sigma.mean() == pytest.approx(2.5, abs=0.3)


# -- sampler --------------------------------------------------------------------------------------
def _aligned_pair(em, depth=6):
    hr = np.stack([np.roll(em[:240, :240], 7 * z, axis=1) for z in range(depth)]).astype(np.float32)
    lr = bicubic_downsample(hr, 3, clip=False)
    return lr, hr


def test_real_pairs_stay_aligned_through_augmentation(em_slice):
    lr, hr = _aligned_pair(em_slice)
    sampler = PatchSampler(
        [Volume3D(hr, range(6))], [Volume3D(lr, range(6))], scale=3, patch=16, strategy="real", input_noise=(0, 0)
    )
    y, x = sampler.sample(8)
    assert y.shape == (8, 1, 16, 16) and x.shape == (8, 1, 48, 48)
    down = torch.from_numpy(bicubic_downsample(x[:, 0].numpy(), 3, clip=False))
    # inside the patch (away from the crop border where the down-sampling kernel differs) they agree
    assert torch.allclose(down[:, 2:-2, 2:-2], y[:, 0, 2:-2, 2:-2], atol=0.02)


def test_sampler_never_draws_held_out_slices():
    vol = np.repeat(np.arange(10, dtype=np.float32)[:, None, None], 60, 1).repeat(60, 2)  # slice z has value z
    sampler = PatchSampler([Volume3D(vol, [0, 1, 2, 3])], None, scale=2, patch=8, strategy="synthetic-i", input_noise=(0, 0))
    _, x = sampler.sample(64)
    values = set(np.unique((x * 255).round().numpy()).tolist())
    assert values <= {0.0, 1.0, 2.0, 3.0} and len(values) > 1


def test_sampler_is_reproducible(em_slice):
    lr, hr = _aligned_pair(em_slice)

    def draw(seed):
        return PatchSampler([Volume3D(hr, range(6))], None, 3, 16, "synthetic-ii", seed=seed).sample(3)

    assert torch.equal(draw(1)[0], draw(1)[0]) and not torch.equal(draw(1)[0], draw(2)[0])


def test_sampler_checks_sizes_and_strategy(em_slice):
    _, hr = _aligned_pair(em_slice)
    with pytest.raises(ValueError, match="smaller than a training patch"):
        PatchSampler([Volume3D(hr, range(6))], None, 3, 100, "synthetic-ii")
    with pytest.raises(ValueError, match="needs one LR volume"):
        PatchSampler([Volume3D(hr, range(6))], None, 3, 16, "real")
    with pytest.raises(ValueError, match="unknown strategy"):
        PatchSampler([Volume3D(hr, range(6))], None, 3, 16, "magic")


@pytest.mark.parametrize(
    "spec, expected",
    [(None, [18, 19]), ("last:3", [17, 18, 19]), ("first:2", [0, 1]), ("4:7", [4, 5, 6]), ("9, 3,5", [3, 5, 9])],
)
def test_parse_slices(spec, expected):
    assert parse_slices(spec, 20) == expected


@pytest.mark.parametrize("spec, message", [("last:20", "leave no slice"), ("3:40", "within 0..19"), ("x", "cannot read")])
def test_parse_slices_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_slices(spec, 20)
