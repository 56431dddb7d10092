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
    for (name, a), b in zip(tuned.state_dict().items(), shipped.state_dict().values(), strict=True):
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


@pytest.mark.parametrize(
    "extra, message",
    [(["--zoom", "1.6,1", "--strategy", "synthetic-em"], "expected 0.25 <= LOW <= HIGH <= 4, got '1.6,1'"),
     (["--zoom", "1", "--strategy", "synthetic-em"], "expected two zoom factors LOW,HIGH"),
     (["--zoom", "1,1.5"], "zoom is the scale augmentation of the synthetic-em strategy: use that strategy")],
)
def test_zoom_range_is_validated_before_training(stacks, tmp_path, capsys, extra, message):
    out = tmp_path / "m.safetensors"
    code = None
    try:
        code = main(["train", "--hr", str(stacks / "hr.tif"), "--out", str(out), *extra, *FAST])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_zoom_help_states_the_default_range_the_sampler_draws(capsys):
    from napari_emsr.training.acquisition import SYNTHETIC_EM_RANGES

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    low, high = SYNTHETIC_EM_RANGES["zoom"]
    assert f"(default: {low:g},{high:g};" in " ".join(capsys.readouterr().out.split())


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


def test_finetune_without_pixel_sizes_names_the_flags(stacks, tmp_path, capsys):
    """The library's hints (options of the job), phrased as this command's flags, in one line."""
    hr = tmp_path / "hr_no_size.tif"
    tifffile.imwrite(hr, tifffile.imread(stacks / "hr_field.tif"))  # no resolution: the pixel size is unknown
    out = tmp_path / "ft.safetensors"
    code = main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(hr), "--out", str(out), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"emsr finetune: error: the pixel size of {hr} is unknown, so the pair's scale is not known: "
                      "give --hr-pixel-size NM, or give --scale S")  # fmt: skip
    assert not out.exists()


def test_finetune_refuses_to_overwrite_with_the_flags(stacks, tmp_path, capsys):
    out = tmp_path / "ft.safetensors"
    out.write_bytes(b"a model already")
    code = main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(stacks / "hr_field.tif"), "--out", str(out),
                 *FAST])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"emsr finetune: error: {out} exists: use --overwrite to replace it, or use --resume "
                                 "to continue its run")  # fmt: skip
    assert out.read_bytes() == b"a model already"


def test_train_real_plus_fitted_fits_the_pair_and_records_it(stacks, tmp_path, capsys):
    out = tmp_path / "fitted.safetensors"
    code = main(["train", "--hr", str(stacks / "hr.tif"), "--lr", str(stacks / "lr.tif"), "--strategy", "real+fitted",
                 "--fitted-share", "0.7", "--preset", "lite", "--out", str(out), *FAST])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "fitted degradation (x3" in text and "electrons" in text  # shown before training starts
    prov = load_model(out).metadata.provenance
    fitted = prov["degradation"]
    # em_like: a Gaussian beam of 1.2 HR px = 0.4 LR px, then area averaging; Poisson at 60 electrons
    assert 0.2 < fitted["probe_sigma_major"]["value"] < 0.7
    assert 30 < fitted["dose"]["value"] < 120 and not fitted["inverted"]
    assert prov["strategy"] == "real+fitted"


def test_fitted_share_is_validated(stacks, tmp_path, capsys):
    code = main(["train", "--hr", str(stacks / "hr.tif"), "--lr", str(stacks / "lr.tif"), "--strategy", "real+fitted",
                 "--fitted-share", "1.5", "--out", str(tmp_path / "m.safetensors"), *FAST])  # fmt: skip
    assert code == 2 and "fitted_share must be between 0 and 1" in capsys.readouterr().err


def test_finetune_starts_from_the_shipped_model_for_its_scale_unless_base_none(stacks, tmp_path, capsys):
    out = tmp_path / "ft.safetensors"
    code = main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(stacks / "hr_field.tif"), "--out", str(out),
                 "--val-slices", "last:1", "--learning-rate", "1e-9", *FAST])  # fmt: skip
    assert code == 0
    model = load_model(out)
    assert model.metadata.provenance["base_model"].endswith("emsr-em-x3.safetensors")  # the x3 default
    assert "random weights" not in capsys.readouterr().err
    out2 = tmp_path / "scratch.safetensors"
    code = main(["finetune", "--lr", str(stacks / "lr.tif"), "--hr", str(stacks / "hr_field.tif"), "--out", str(out2),
                 "--base", "none", "--preset", "lite", "--val-slices", "last:1", *FAST])  # fmt: skip
    assert code == 0
    assert "from random weights" in capsys.readouterr().err
    assert "base_model" not in load_model(out2).metadata.provenance


def test_minutes_alone_is_a_budget_the_run_uses(stacks, tmp_path, capsys):
    out = tmp_path / "budget.safetensors"
    code = main(["train", "--hr", str(stacks / "hr.tif"), "--strategy", "synthetic-ii", "--preset", "lite",
                 "--out", str(out), "--minutes", "0.2", "--patch", "16", "--val-every", "1000", "--seed", "1"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "0.2 min budget:" in err  # the steps were planned from the measured step time
    plans = [int(part.split(" steps")[0]) for part in err.split("0.2 min budget: ")[1:]]  # planned, then re-planned
    steps = load_model(out).metadata.provenance["steps"]
    assert plans[0] > 20 and steps > 20  # not the 20,000-step default, not stopped at calibration
    assert steps <= plans[-1] * 1.05 + 1  # re-plans within 5 % of the last one said are not said


def test_degradation_consistency_term_trains_on_lr_without_hr(stacks, tmp_path, capsys):
    from napari_emsr.config import ConfigError, TrainingConfig
    from napari_emsr.io import open_volume
    from napari_emsr.training import iter_finetune

    hr, lr = open_volume(stacks / "hr.tif").data, open_volume(stacks / "lr.tif").data
    config = TrainingConfig(strategy="real+fitted", steps=3, val_every=3, patch=16, lambda_consistency=0.5, seed=1)
    losses = [e.payload.losses for e in iter_finetune([hr], [lr], out=tmp_path / "c.safetensors", config=config,
                                                      preset="lite", scale=3) if e.kind == "step"]  # fmt: skip
    assert len(losses) == 3 and all(0 < d["degradation"] < 1 for d in losses)
    assert all(d["total"] > d["ref"] for d in losses)  # the term is part of the loss
    with pytest.raises(ConfigError, match="fitted or real\\+fitted"):
        TrainingConfig(strategy="real", lambda_consistency=0.5)
