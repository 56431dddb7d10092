import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from napari_emsr.resample import bicubic_downsample, bicubic_upsample, resize


def test_shapes_and_stacks(rng):
    stack = rng.random((3, 30, 21)).astype(np.float32)
    assert bicubic_upsample(stack, 3).shape == (3, 90, 63)
    assert bicubic_downsample(bicubic_upsample(stack, 3), 3).shape == (3, 30, 21)
    assert resize(stack[0], (7, 5)).shape == (7, 5)


def test_constant_and_linear_ramps_are_preserved():
    flat = np.full((12, 12), 77.0)
    assert np.allclose(bicubic_upsample(flat, 2), 77.0)
    # half-pixel centres: a ramp in x of slope 1 per LR pixel becomes slope 1/3 per HR pixel
    ramp = np.tile(np.arange(16, dtype=np.float32), (16, 1))
    up = bicubic_upsample(ramp, 3, clip=False)
    centre = up[20:28, 12:36]
    assert np.allclose(np.diff(centre, axis=1), 1 / 3, atol=1e-4)


def test_down_then_up_is_close_on_real_em(em_slice):
    hr = em_slice[:255, :255].astype(np.float32)
    lr = bicubic_downsample(hr, 3)
    assert lr.shape == (85, 85) and lr.min() >= hr.min() and lr.max() <= hr.max()
    psnr = peak_signal_noise_ratio(hr, bicubic_upsample(lr, 3), data_range=255)
    assert 18 < psnr < 35  # a real loss of detail, but the same image


def test_bad_input():
    with pytest.raises(ValueError, match="multiples of the scale"):
        bicubic_downsample(np.zeros((10, 9)), 3)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        resize(np.zeros(5), (2, 2))
    with pytest.raises(ValueError, match="positive integer"):
        bicubic_upsample(np.zeros((4, 4)), 1.5)


def test_matches_pillow_bicubic(em_slice):
    """Pillow's BICUBIC (Keys a=-0.5, antialiased when shrinking) is the external reference.

    Borders differ by design (we replicate edge pixels, Pillow renormalises the kernel), so the
    comparison leaves out a margin of two kernel widths."""
    from PIL import Image

    img = em_slice[:90, :120].astype(np.float32)
    up = np.asarray(Image.fromarray(img).resize((360, 270), Image.BICUBIC))
    assert np.abs(bicubic_upsample(img, 3, clip=False) - up)[6:-6, 6:-6].max() < 1e-3
    down = np.asarray(Image.fromarray(img).resize((40, 30), Image.BICUBIC))
    assert np.abs(bicubic_downsample(img, 3, clip=False) - down)[2:-2, 2:-2].max() < 1e-3
