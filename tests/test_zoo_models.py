"""Every shipped zoo model: complete metadata, and better than bicubic on held-out slices of every modality.

Zero-shot, as a user without an HR pair uses them: each data set's ``validation/`` folder (never
trained on), an EM-like acquisition at the model's scale (benchmarks/evaluate_zoo.py's em-like), the
real engine. A smaller version of the benchmark (two crops of up to 384 px per modality), so it runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr import load_model, super_resolve
from napari_emsr.metrics import frc_mean, ssim
from napari_emsr.resample import bicubic_upsample
from napari_emsr.training.degrade import em_like
from napari_emsr.zoo import default_for_scale, zoo_models

FOLDERS = {
    "flyem-fibsem": "flyem-medulla-fibsem/validation_sample",
    "hela-sbfsem": "hela-sbfsem-empiar10094/validation",
    "celegans-em": "celegans-em-neubias/validation",
    "mussel-ssem": "mussel-ssem-vemstitch/validation",
}
MODELS = zoo_models()


@pytest.fixture(scope="module")
def held_out(data_dir):
    """Two centre crops of (at most) 384 px from each modality's held-out folder (uint8)."""
    out = {}
    for name, folder in FOLDERS.items():
        files = sorted((data_dir.parent / folder).glob("*.png"))
        picks = [files[0], files[-1]]
        crops = []
        for f in picks:
            image = imread(f)
            c = min(384, *image.shape)
            y0, x0 = (image.shape[0] - c) // 2, (image.shape[1] - c) // 2
            crops.append(image[y0 : y0 + c, x0 : x0 + c])
        out[name] = np.stack(crops)
    return out


def test_the_zoo_has_a_default_for_scale_3_and_names_are_unique():
    assert default_for_scale(3) is not None
    names = [m.name for m in MODELS]
    assert len(names) == len(set(names)) and len(names) >= 1


@pytest.mark.parametrize("entry", MODELS, ids=[m.name for m in MODELS])
def test_metadata_is_complete(entry):
    model = load_model(entry.path)
    meta = model.metadata
    assert meta.trained and meta.name and meta.description
    assert model.config.scale == entry.scale and meta.input_pixel_size_nm == 10.0 * entry.scale
    assert meta.effective_radius_px is not None
    prov = meta.provenance
    assert prov["strategy"] and prov["steps"] > 0 and prov["licence"] and prov["hardware"]
    if entry.valid_input_pixel_size_nm is not None:
        low, high = entry.valid_input_pixel_size_nm
        assert low <= meta.input_pixel_size_nm <= high


@pytest.mark.slow
@pytest.mark.parametrize("entry", MODELS, ids=[m.name for m in MODELS])
def test_beats_bicubic_zero_shot_on_every_modality(entry, held_out):
    model = load_model(entry.path)
    s = model.config.scale
    for name, hr in held_out.items():
        h = hr.shape[1] // s * s
        ref = hr[:, :h, :h]
        x = torch.from_numpy(ref / 255.0).float()[:, None]
        lr = em_like(x, s, torch.Generator().manual_seed(3), blur=0.4 * s)[:, 0].numpy()
        lr = (np.clip(lr, 0, 1) * 255).round().astype(np.uint8)
        sr = super_resolve(lr, model, pixel_size=model.metadata.input_pixel_size_nm).astype(np.float32)
        bic = np.clip(bicubic_upsample(lr, s), 0, 255).round()
        r = ref.astype(np.float32)
        ssim_sr = np.mean([ssim(a, b, data_range=255) for a, b in zip(r, sr, strict=True)])
        ssim_bic = np.mean([ssim(a, b, data_range=255) for a, b in zip(r, bic, strict=True)])
        frc_sr = np.mean([frc_mean(a, b) for a, b in zip(r, sr, strict=True)])
        frc_bic = np.mean([frc_mean(a, b) for a, b in zip(r, bic, strict=True)])
        assert ssim_sr > ssim_bic + 0.02, (name, ssim_sr, ssim_bic)
        assert frc_sr > frc_bic, (name, frc_sr, frc_bic)
