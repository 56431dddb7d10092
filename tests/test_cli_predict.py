"""`emsr predict`: a working run, and bad input refused with one line and nothing written."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_emsr import open_volume, save_model, super_resolve
from napari_emsr.cli import main

from ._predict_models import sensitive_model

# the reference predictions made in the tests themselves; the CLI shows its warnings regardless
pytestmark = [
    pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning"),
    pytest.mark.filterwarnings("ignore::napari_emsr.predict.PixelSizeWarning"),
]


@pytest.fixture(scope="module")
def files(data_dir, tmp_path_factory):
    """A 4-slice OME-TIFF of real validation crops, its PNG slices, and a tiny random model."""
    from skimage.io import imread

    root = tmp_path_factory.mktemp("cli")
    sources = sorted((data_dir / "validation_sample").glob("*.png"))[:4]
    stack = np.stack([imread(f)[:72, :64] for f in sources])
    tifffile.imwrite(root / "lr.ome.tif", stack, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.01, "PhysicalSizeY": 0.01})
    pngs = root / "pngs"
    pngs.mkdir()
    for f in sources:
        shutil.copy(f, pngs / f.name)
    model = save_model(sensitive_model(2), root / "tiny.safetensors", input_pixel_size_nm=10.0)
    return {"root": root, "tif": root / "lr.ome.tif", "pngs": pngs, "model": model, "stack": stack}


def test_predict_ome_tiff_with_summary(files, tmp_path, capsys):
    out = tmp_path / "sr.ome.tif"
    code = main(["predict", str(files["tif"]), str(out), "--model", str(files["model"]), "--tile", "16", "--batch", "2",
                 "--overlap", "exact"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    line = captured.out.strip().splitlines()[-1]
    assert re.fullmatch(rf"emsr predict: 4 slices -> {re.escape(str(out))} \(4, 144, 128\) in [\d.]+ s, [\d.]+ output MP/s", line)
    assert "warning: this model has random weights" in captured.err
    assert "halo 36 (exact)" in captured.err
    with open_volume(out) as vol:
        assert vol.pixel_size_nm == pytest.approx((None, 5.0, 5.0))
        expected = super_resolve(files["stack"], files["model"], tile=16, overlap="exact")  # batch 1: may round
        assert np.abs(vol.data.compute().astype(int) - expected).max() <= 1


def test_predict_png_folder_to_zarr_with_options(files, tmp_path, capsys):
    out = tmp_path / "sr.ome.zarr"
    argv = ["predict", str(files["pngs"]), str(out), "--model", str(files["model"]), "--pixel-size", "12", "--overlap", "8",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "halo 8 (given; receptive radius 34)" in captured.err
    assert "4 slices" in captured.out and "(4, 1040, 1040)" in captured.out
    with open_volume(out) as vol:
        assert vol.shape == (4, 1040, 1040) and vol.pixel_size_nm[1:] == pytest.approx((6.0, 6.0))
    assert main(argv + ["--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_self_ensemble_flag(files, tmp_path, capsys):
    out = tmp_path / "se.ome.tif"
    assert main(["predict", str(files["tif"]), str(out), "--model", str(files["model"]), "--self-ensemble"]) == 0
    assert "self-ensemble" in capsys.readouterr().err
    expected = super_resolve(files["stack"], files["model"], self_ensemble=True)
    with open_volume(out) as vol:
        np.testing.assert_array_equal(vol.data.compute(), expected)
        assert np.abs(vol.data.compute().astype(int) - super_resolve(files["stack"], files["model"])).max() > 0


def _fails(argv, capsys, match, folder):
    before = sorted(p.name for p in folder.iterdir())
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("emsr predict: error:") and re.search(match, err[0]), err
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


def test_bad_input_is_refused_with_one_line(files, tmp_path, capsys):
    model = ["--model", str(files["model"])]
    out = str(tmp_path / "o.ome.tif")
    _fails(["predict", str(tmp_path / "missing.tif"), out, *model], capsys, "no such file", tmp_path)
    four = tmp_path / "4d.ome.tif"
    tifffile.imwrite(four, np.stack([files["stack"]] * 2), ome=True, metadata={"axes": "TZYX"})
    _fails(["predict", str(four), out, *model], capsys, "4 non-trivial dimensions", tmp_path)
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.repeat(files["stack"][0][..., None], 3, -1), photometric="rgb")
    _fails(["predict", str(rgb), out, *model], capsys, "colour", tmp_path)
    (tmp_path / "empty").mkdir()
    _fails(["predict", str(tmp_path / "empty"), out, *model], capsys, "no PNG or TIFF slices", tmp_path)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + bytes(20))
    _fails(["predict", str(tmp_path / "broken.tif"), out, *model], capsys, "not a readable TIFF", tmp_path)
    _fails(["predict", str(files["tif"]), str(tmp_path / "o.png"), *model], capsys, "must end in", tmp_path)
    _fails(["predict", str(files["tif"]), out, "--model", str(files["tif"])], capsys, "image, not a model", tmp_path)
    _fails(["predict", str(files["tif"]), out, *model, "--tile", "0"], capsys, "tile must be", tmp_path)
    _fails(["predict", str(files["tif"]), out, *model, "--resume"], capsys, "only OME-Zarr", tmp_path)


def test_existing_output_needs_overwrite(files, tmp_path, capsys):
    out = tmp_path / "o.ome.tif"
    out.write_bytes(b"keep me")
    _fails(["predict", str(files["tif"]), str(out), "--model", str(files["model"])], capsys, "exists; pass --overwrite", tmp_path)
    assert out.read_bytes() == b"keep me"
    assert main(["predict", str(files["tif"]), str(out), "--model", str(files["model"]), "--overwrite"]) == 0
    assert tifffile.TiffFile(out).is_ome


def test_missing_cuda_is_a_clear_error(files, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["predict", str(files["tif"]), str(tmp_path / "o.ome.tif"), "--model", str(files["model"]), "--device", "cuda"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "install a CUDA build of PyTorch" in err and "--device cpu" in err
    assert not (tmp_path / "o.ome.tif").exists()


def test_help_lists_options_and_a_missing_model_is_explained(files, tmp_path, capsys, monkeypatch):
    result = subprocess.run([sys.executable, "-m", "napari_emsr.cli", "predict", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for flag in ("--model", "--tile", "--overlap", "--batch", "--device", "--pixel-size", "--resume", "--overwrite", "--self-ensemble"):
        assert flag in result.stdout
    import napari_emsr.model_io

    monkeypatch.setattr(napari_emsr.model_io, "default_model_path", lambda scale=None: None)  # a build without one
    out = tmp_path / "out.ome.tif"
    assert main(["predict", str(files["tif"]), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no shipped default model" in err[0] and "--model FILE" in err[0]
    assert not out.exists()