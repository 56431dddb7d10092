"""The pretrained default model shipped in the package (docs/models/default.md)."""

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr import load_model, super_resolve
from napari_emsr.cli import main
from napari_emsr.metrics import ssim
from napari_emsr.model_io import default_model_path
from napari_emsr.resample import bicubic_upsample
from napari_emsr.training.degrade import em_like


@pytest.fixture(scope="module")
def default():
    path = default_model_path()
    assert path is not None, "the package must ship its default model (src/napari_emsr/weights/)"
    return path


def test_loads_with_complete_metadata(default):
    model = load_model(default)
    meta = model.metadata
    assert meta.trained and model.config.scale == 3 and meta.name
    assert meta.input_pixel_size_nm == 30.0
    assert meta.normalization.mode == "range" and (meta.normalization.low, meta.normalization.high) == (0, 255)
    assert meta.effective_radius_px is not None and 0 < meta.effective_radius_px < 112
    prov = meta.provenance
    for key in ("data", "licence", "strategy", "steps", "wall_time_s", "hardware", "command", "best_validation"):
        assert prov.get(key), key
    licences = " ".join(prov["licence"]) if isinstance(prov["licence"], list) else prov["licence"]
    assert prov["strategy"] in ("synthetic-ii", "synthetic-em") and "CC BY 3.0" in licences
    used = " ".join(prov["data"])
    assert "validation" not in used  # never trained on a held-out set
    assert prov["command"].startswith("emsr train")


def test_beats_bicubic_on_held_out_slices(default, data_dir):
    """Held-out validation_sample slices, degraded by an EM-like acquisition unlike the training one."""
    files = sorted((data_dir / "validation_sample").glob("*.png"))
    hr = np.stack([imread(files[i]) for i in (20, 100, 180)])[:, :240, :240]
    lr = em_like(torch.from_numpy(hr / 255.0).float()[:, None], 3, torch.Generator().manual_seed(3))[:, 0].numpy()
    lr = (np.clip(lr, 0, 1) * 255).round().astype(np.uint8)
    sr = super_resolve(lr, pixel_size=30.0)  # no model given: the default
    bicubic = np.clip(bicubic_upsample(lr, 3), 0, 255)
    for ref, ours, base in zip(hr, sr, bicubic, strict=True):
        assert ssim(ref, ours, data_range=255) > ssim(ref, base.round().astype(np.uint8), data_range=255) + 0.05


def test_info_describes_the_default(capsys, default):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert str(default) in text and "UNTRAINED" not in text and "30 nm input -> 10 nm output" in text
