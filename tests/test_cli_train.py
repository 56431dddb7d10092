"""`emsr train` and `emsr finetune` end to end on small stacks of real FIB-SEM slices."""

import numpy as np
import pytest
import tifffile
import torch
from skimage.io import imread

from napari_emsr import load_model
from napari_emsr.cli import main
from napari_emsr.training.degrade import em_like


@pytest.fixture(scope="module")
def stacks(data_dir, tmp_path_factory):
    """HR: 10 slices of training_sample2 (10 nm); LR: an EM-like x3 acquisition of them (30 nm)."""
    folder = tmp_path_factory.mktemp("stacks")
    files = sorted((data_dir / "training_sample2").glob("*.png"))[:10]
    hr = np.stack([imread(f) for f in files])[:, :150, :150]
    lr = em_like(torch.from_numpy(hr / 255.0).float()[:, None], 3, torch.Generator().manual_seed(0))[:, 0].numpy()
    lr = (np.clip(lr, 0, 1) * 255).round().astype(np.uint8)
    tifffile.imwrite(folder / "hr.tif", hr, imagej=True, resolution=(100, 100), metadata={"unit": "um", "axes": "ZYX"})
    tifffile.imwrite(folder / "lr.tif", lr, imagej=True, resolution=(100 / 3, 100 / 3), metadata={"unit": "um", "axes": "ZYX"})
    tifffile.imwrite(folder / "hr_field.tif", hr[2:8, 30:120, 45:135], imagej=True, resolution=(100, 100), metadata={"unit": "um", "axes": "ZYX"})
    return folder


pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "3", "--val-every", "3", "--patch", "16", "--seed", "1"]




def test_train_synthetic(stacks, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["train", "--hr", str(stacks / "hr.tif"), "--strategy", "synthetic-ii", "--preset", "lite", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "validation (held-out slices)" in text and "bicubic" in text and "*best" in text
    model = load_model(out)
    assert model.metadata.trained and model.metadata.input_pixel_size_nm == pytest.approx(30)
    assert model.metadata.provenance["command"].startswith("emsr train --hr")


def test_train_real_needs_aligned_lr(stacks, tmp_path, capsys):
    code = main(["train", "--hr", str(stacks / "hr.tif"), "--lr", str(stacks / "lr.tif"), "--strategy", "synthetic-ii",
                 "--out", str(tmp_path / "m.safetensors"), *FAST])
    assert code == 2 and "leave out --lr" in capsys.readouterr().err


def test_finetune_locates_the_field_and_trains(stacks, tmp_path, capsys):
    out = tmp_path / "ft.safetensors"
    code = main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(stacks / "hr_field.tif"), "--out", str(out),
                 "--preset", "lite", "--val-slices", "last:1", *FAST])
    assert code == 0
    text = capsys.readouterr().out
    assert "HR field found at LR (z, y, x) = (2, 10, 15)" in text
    prov = load_model(out).metadata.provenance
    assert prov["pair"]["offset_zyx"] == [2, 10, 15] and prov["pair"]["match_score"] > 0.7
    assert load_model(out).metadata.input_pixel_size_nm == pytest.approx(30)


def test_finetune_refuses_a_field_that_is_not_there(stacks, tmp_path, capsys, data_dir):
    other = np.stack([imread(f) for f in sorted((data_dir / "validation_sample").glob("*.png"))[:6]])[:, :90, :90]
    tifffile.imwrite(tmp_path / "other.tif", other, imagej=True, resolution=(100, 100), metadata={"unit": "um", "axes": "ZYX"})
    out = tmp_path / "ft.safetensors"
    code = main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(tmp_path / "other.tif"), "--out", str(out), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not found in the LR volume" in err[0] and "--offset" in err[0]
    assert not out.exists()


def test_finetune_bad_offset_syntax(stacks, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(stacks / "hr_field.tif"), "--out", "x.safetensors", "--offset", "1,2"])
    assert info.value.code == 2 and "Z,Y,X" in capsys.readouterr().err


def test_finetune_from_the_default_model(stacks, tmp_path, capsys):
    """--base default starts from the shipped weights (not random ones) and keeps their architecture."""
    from napari_emsr.model_io import default_model_path

    out = tmp_path / "ft.safetensors"
    code = main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(stacks / "hr_field.tif"), "--out", str(out),
                 "--base", "default", "--val-slices", "last:1", "--learning-rate", "1e-9", *FAST])
    assert code == 0, capsys.readouterr().err
    tuned, shipped = load_model(out), load_model(default_model_path())
    assert tuned.config == shipped.config
    for (name, a), b in zip(tuned.state_dict().items(), shipped.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name  # a tiny learning rate: still the shipped weights


@pytest.mark.parametrize(
    "value, message",
    [("-1,0,0", "lambda_1 (the weight of l(f(y), x)) must be > 0, got -1"), ("0,1,1", "lambda_1"),
     ("1,-0.5,1", "lambda_2 must be >= 0, got -0.5"), ("1,1,nan", "lambda_3 must be a finite number"),
     ("1,2", "three weights")],
)
def test_lambdas_are_read_even_when_negative_and_validated(stacks, tmp_path, capsys, value, message):
    """'--lambdas -1,0,0' is a value (not an option) and gets a message about lambda_1."""
    out = tmp_path / "m.safetensors"
    with pytest.raises(SystemExit) as info:
        main(["train", "--hr", str(stacks / "hr.tif"), "--out", str(out), "--lambdas", value, *FAST])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "expected one argument" not in err, err
    assert not out.exists()


def test_negative_lambdas_given_with_equals_too(stacks, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--hr", str(stacks / "hr.tif"), "--out", str(tmp_path / "m.safetensors"), "--lambdas=-1,0,0"])
    assert "lambda_1" in capsys.readouterr().err


def test_train_names_non_finite_data_before_training(stacks, tmp_path, capsys):
    hr = tifffile.imread(stacks / "hr.tif").astype(np.float32)
    hr[3, 20, 30] = np.nan
    path = tmp_path / "hr_nan.tif"
    tifffile.imwrite(path, hr)
    out = tmp_path / "m.safetensors"
    code = main(["train", "--hr", str(path), "--out", str(out), "--preset", "lite", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert str(path) in err[0] and "slice 3 has 1 NaN or infinite value" in err[0] and "learning rate" not in err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_finetune_names_non_finite_data_before_training(stacks, tmp_path, capsys):
    lr = tifffile.imread(stacks / "lr.tif").astype(np.float32)
    lr[4, 5, 6] = np.inf
    path = tmp_path / "lr_inf.tif"
    tifffile.imwrite(path, lr, imagej=True, resolution=(100 / 3, 100 / 3), metadata={"unit": "um", "axes": "ZYX"})
    out = tmp_path / "ft.safetensors"
    code = main(["finetune", "--lr", str(path), "--hr", str(stacks / "hr_field.tif"), "--out", str(out), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert str(path) in err[0] and "slice 4 has 1 NaN or infinite value" in err[0]
    assert not out.exists()
