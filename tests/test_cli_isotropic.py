"""`emsr isotropic` end to end on a simulated anisotropic acquisition of real FIB-SEM slices."""

import numpy as np
import pytest
import tifffile
from skimage.io import imread

from napari_emsr import load_model
from napari_emsr.cli import main
from napari_emsr.io import open_volume
from napari_emsr.isotropic import sample_sections
from napari_emsr.isotropic.sampling import isotropic_depth

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stack(data_dir, tmp_path_factory):
    """30 FIB-SEM slices (10 nm) sampled every 2.5 slices: an ImageJ TIFF of 12 x 64 x 64 at 25 x 10 x 10 nm."""
    folder = tmp_path_factory.mktemp("aniso")
    files = sorted((data_dir / "training_sample2").glob("*.png"), key=lambda p: int(p.stem.split(".")[1]))[:30]
    volume = np.stack([imread(f)[60:124, 60:124] for f in files]).astype(np.float32)
    sections = np.clip(np.rint(sample_sections(volume, 2.5, seed=0)), 0, 255).astype(np.uint8)
    tifffile.imwrite(folder / "aniso.tif", sections, imagej=True, resolution=(100, 100),
                     metadata={"spacing": 0.025, "unit": "um", "axes": "ZYX"})  # fmt: skip
    plain = folder / "slices"
    plain.mkdir()
    for k, plane in enumerate(sections):
        tifffile.imwrite(plain / f"s{k:02d}.tif", plane)
    return folder


def test_it_trains_on_the_volume_then_writes_isotropic_voxels(stack, tmp_path, capsys):
    out = tmp_path / "iso.ome.zarr"
    assert main(["isotropic", str(stack / "aniso.tif"), str(out), "--steps", "3", "--tile", "64"]) == 0
    captured = capsys.readouterr()
    assert "z factor 2.5 (pixel sizes 25 / 10 nm)" in captured.err
    assert "validation (held-out slices)" in captured.out
    model_file = tmp_path / "iso.isotropic.safetensors"
    model = load_model(model_file)
    assert model.config.scale == 1 and model.metadata.provenance["section_sampling"]["factor"] == 2.5
    assert model.metadata.provenance["command"].startswith("emsr isotropic")
    with open_volume(out) as vol:
        assert vol.shape == (isotropic_depth(12, 2.5), 64, 64)
        assert vol.pixel_size_nm == pytest.approx((10.0, 10.0, 10.0))
    assert f"-> {out} [28, 64, 64] (z pixel 10 nm)" in captured.out

    # a second run does not replace the trained model silently, and says how to reuse it
    again = tmp_path / "again.ome.tif"
    code = main(["isotropic", str(stack / "aniso.tif"), str(again), "--steps", "3", "--save-model", str(model_file)])
    assert code == 2 and f"--model {model_file}" in capsys.readouterr().err and not again.exists()
    # with --model it only reconstructs
    assert main(["isotropic", str(stack / "aniso.tif"), str(again), "--model", str(model_file)]) == 0
    assert "training" not in capsys.readouterr().err
    with open_volume(again) as vol:
        assert vol.shape == (28, 64, 64)


def test_a_volume_without_pixel_sizes_needs_its_z_factor(stack, tmp_path, capsys):
    code = main(["isotropic", str(stack / "slices"), str(tmp_path / "o.ome.zarr"), "--steps", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "--z-factor K" in err and "--pixel-size" in err
    assert not (tmp_path / "o.ome.zarr").exists() and not (tmp_path / "o.isotropic.safetensors").exists()


def test_a_super_resolution_model_is_refused_in_the_users_terms(stack, tmp_path, capsys):
    code = main(["isotropic", str(stack / "aniso.tif"), str(tmp_path / "o.ome.zarr"), "--model", "em-x3"])
    err = capsys.readouterr().err
    assert code == 2 and "scale-1 network" in err and "--model FILE" in err
    assert list(tmp_path.iterdir()) == []
