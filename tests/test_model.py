import numpy as np
import pytest
import torch

from napari_emsr import EMSRConfig, build_emsr
from napari_emsr.model.emsr import receptive_radius
from napari_emsr.model.wavelet import AtrousWavelet, atrous_wavelet
from napari_emsr.model.window_attention import ViTBlock, WindowAttention, window_partition, window_reverse

from .conftest import TINY


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (17, 9), (33, 31)])
def test_output_shape_any_size(scale, size):
    torch.manual_seed(0)
    model = build_emsr(scale=scale, **TINY).eval()
    with torch.inference_mode():
        out = model(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, size[0] * scale, size[1] * scale)
    assert torch.isfinite(out).all()


def test_padding_never_resizes_content():
    """A crop of the top-left window-aligned region gives the same output as the full image there."""
    torch.manual_seed(0)
    model = build_emsr(scale=2, **TINY).eval()
    x = torch.rand(1, 1, 21, 19)
    with torch.inference_mode():
        full = model(x)
        padded = model(torch.nn.functional.pad(x, (0, 1, 0, 3), mode="reflect"))  # 24 x 20, no padding inside
    assert torch.allclose(full, padded[..., :42, :38], atol=1e-5)


def test_paper_preset_size():
    model = build_emsr("paper")
    n = sum(p.numel() for p in model.parameters())
    assert 2.5e6 <= n <= 4e6, n
    assert len(model.blocks) == 3
    assert model.blocks[0].vit.attn.num_heads == 16 and model.blocks[0].vit.window == 4
    assert model.blocks[0].vit.mlp[0].out_features == 128  # MLP ratio 2
    assert len(model.blocks[0].res_blocks) == 4


def test_lite_preset_is_much_cheaper():
    paper = sum(p.numel() for p in build_emsr("paper").parameters())
    lite = sum(p.numel() for p in build_emsr("lite").parameters())
    assert lite < paper / 4


def test_model_runs_on_real_em(em_slice):
    torch.manual_seed(0)
    model = build_emsr(scale=3, **TINY).eval()
    crop = torch.from_numpy(em_slice[:45, :50].astype(np.float32) / 255)[None, None]
    with torch.inference_mode():
        out = model(crop)
    assert out.shape == (1, 1, 135, 150)
    assert torch.isfinite(out).all()


def test_receptive_radius_bounds_real_influence():
    """Changing one input pixel never changes output pixels farther than the computed radius."""
    torch.manual_seed(0)
    config = EMSRConfig.from_dict({**TINY, "scale": 2})
    model = build_emsr(config).eval()
    radius = receptive_radius(config)
    size = 2 * radius + 24
    x = torch.rand(1, 1, size, size)
    y = x.clone()
    y[0, 0, size // 2, size // 2] += 1.0
    with torch.inference_mode():
        diff = (model(x) - model(y)).abs()[0, 0]
    changed = torch.nonzero(diff > 0)
    reach = (changed // 2 - size // 2).abs().max().item()  # in input pixels
    assert reach <= radius
    assert reach > 0


# -- a-trous wavelet -------------------------------------------------------------------------------
def test_wavelet_details_sum_back_to_input(em_slice):
    x = torch.from_numpy(em_slice[:97, :130].astype(np.float64) / 255)[None, None]
    details, smooth = atrous_wavelet(x, scales=3)
    assert len(details) == 3
    assert torch.allclose(sum(details) + smooth, x, atol=1e-12)
    # a constant image has no edges at any scale
    flat_details, flat_smooth = atrous_wavelet(torch.full((1, 1, 20, 20), 0.3, dtype=torch.float64), 3)
    assert all(d.abs().max() < 1e-12 for d in flat_details)
    assert torch.allclose(flat_smooth, torch.full_like(flat_smooth, 0.3))


def test_wavelet_uses_b3_spline_with_holes():
    """An impulse smoothed once gives the B3 kernel's outer product; twice, the kernel dilated by 2."""
    x = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    x[0, 0, 20, 20] = 1.0
    details, _ = atrous_wavelet(x, scales=2)
    h = torch.tensor([1, 4, 6, 4, 1], dtype=torch.float64) / 16
    smooth1 = x - details[0]
    assert torch.allclose(smooth1[0, 0, 18:23, 18:23], torch.outer(h, h))
    h2 = torch.zeros(9, dtype=torch.float64)
    h2[::2] = h
    smooth2 = smooth1 - details[1]
    expected = torch.nn.functional.conv2d(torch.outer(h, h)[None, None], torch.outer(h2, h2)[None, None], padding=8)
    assert expected.shape[-1] == 13
    assert torch.allclose(smooth2[0, 0, 14:27, 14:27], expected[0, 0])
    assert torch.allclose(smooth2.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_wavelet_module_stacks_scales():
    out = AtrousWavelet(3)(torch.rand(2, 1, 9, 11))
    assert out.shape == (2, 3, 9, 11)


# -- window attention ------------------------------------------------------------------------------
def test_window_partition_round_trip():
    x = torch.rand(2, 8, 12, 5)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 5)
    assert torch.equal(window_reverse(windows, 4, 8, 12), x)
    # the second window of the first image is rows 0-3, columns 4-7
    assert torch.equal(windows[1].view(4, 4, 5), x[0, 0:4, 4:8])


def _naive_window_attention(attn: WindowAttention, x: torch.Tensor, window: int) -> torch.Tensor:
    """Per window, per head, with explicit softmax(QK^T / sqrt(d)) V (paper eq. 13-14)."""
    b, h, w, c = x.shape
    heads, d = attn.num_heads, attn.head_dim
    wq, wk, wv = attn.qkv.weight.split(c)
    bq, bk, bv = attn.qkv.bias.split(c)
    out = torch.zeros_like(x)
    for n in range(b):
        for i in range(0, h, window):
            for j in range(0, w, window):
                tokens = x[n, i : i + window, j : j + window].reshape(-1, c)
                q, k, v = tokens @ wq.T + bq, tokens @ wk.T + bk, tokens @ wv.T + bv
                per_head = []
                for t in range(heads):
                    sl = slice(t * d, (t + 1) * d)
                    scores = torch.softmax(q[:, sl] @ k[:, sl].T / d**0.5, dim=-1)
                    per_head.append(scores @ v[:, sl])
                result = torch.cat(per_head, dim=1) @ attn.proj.weight.T + attn.proj.bias
                out[n, i : i + window, j : j + window] = result.view(window, window, c)
    return out


def test_window_attention_equals_naive_loop():
    torch.manual_seed(0)
    attn = WindowAttention(channels=16, num_heads=4).double()
    x = torch.randn(2, 8, 12, 16, dtype=torch.float64)
    fast = window_reverse(attn(window_partition(x, 4)), 4, 8, 12)
    assert torch.allclose(fast, _naive_window_attention(attn, x, 4), atol=1e-10)


def test_vit_block_is_pre_norm_residual_and_local():
    torch.manual_seed(0)
    block = ViTBlock(channels=8, num_heads=2, window=4, mlp_ratio=2.0).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[..., 0, 0] += 5  # a change inside the top-left window ...
    with torch.no_grad():
        dx, dy = block(x), block(y)
    changed = (dx - dy).abs().amax(dim=1)[0] > 1e-6
    assert changed[:4, :4].any() and not changed[4:, :].any() and not changed[:, 4:].any()  # ... stays there
    assert block(torch.randn(1, 8, 7, 6)).shape == (1, 8, 7, 6)  # pads and crops itself


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_emsr(scale=2, **TINY)
    model(torch.rand(1, 1, 12, 12)).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
