"""``emsr evaluate`` on real FlyEM slices: a degraded stack against its original."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from skimage.filters import gaussian
from skimage.io import imread

from napari_emsr.cli import main
from napari_emsr.metrics import evaluate_stack, frc_curve, frc_pool, frc_resolution, psnr, ssim
from napari_emsr.resample import bicubic_downsample, bicubic_upsample

SCALE = 3


def write(path, array):
    tifffile.imwrite(path, array, photometric="minisblack")


@pytest.fixture(scope="module")
def volumes(data_dir, tmp_path_factory):
    """Four 192 x 192 validation slices, their LR (blur, noise, bicubic / 3) and a lightly smoothed copy.

    Data: FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples, CC BY 3.0; cropped
    and degraded here.
    """
    rng = np.random.default_rng(0)
    files = sorted((data_dir / "validation_sample").glob("*.png"))[:4]
    reference = np.stack([imread(f)[100:292, 150:342] for f in files])
    blurred = gaussian(reference.astype(np.float64), sigma=(0, 1.0, 1.0), preserve_range=True)
    noisy = blurred + rng.normal(0.0, 5.0, blurred.shape)
    lr = np.clip(np.rint(bicubic_downsample(noisy, SCALE)), 0, 255).astype(np.uint8)
    smoothed = gaussian(reference.astype(np.float64), sigma=(0, 0.6, 0.6), preserve_range=True)
    prediction = np.clip(np.rint(smoothed), 0, 255).astype(np.uint8)
    folder = tmp_path_factory.mktemp("evaluate")
    paths = {}
    for name, array in (("reference", reference), ("lr", lr), ("prediction", prediction)):
        paths[name] = folder / f"{name}.tif"
        write(paths[name], array)
    return {"reference": reference, "lr": lr, "prediction": prediction, "paths": paths, "folder": folder}


def test_prediction_and_bicubic_against_the_reference(volumes, capsys):
    p = volumes["paths"]
    out, png = volumes["folder"] / "scores.json", volumes["folder"] / "frc.png"
    argv = ["evaluate", str(p["reference"]), str(p["prediction"]), "--lr", str(p["lr"]), "--pixel-size", "10"]
    assert main([*argv, "--json", str(out), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "PSNR (dB)" in text and "bicubic x3" in text and "data range: 255" in text and "10 nm" in text
    report = json.loads(out.read_text())
    for key in ("psnr", "ssim", "frc_mean", "frc_resolution_nm", "per_slice", "bicubic"):
        assert key in report
    assert report["scale"] == SCALE and report["data_range"] == 255 and report["pixel_size_nm"] == 10
    reference, prediction = volumes["reference"], volumes["prediction"]
    bicubic = np.stack([bicubic_upsample(lr, SCALE) for lr in volumes["lr"]])
    for name, stack, scores in (("prediction", prediction, report), ("bicubic", bicubic, report["bicubic"])):
        assert len(scores["per_slice"]) == 4
        curves = []
        for z, row in enumerate(scores["per_slice"]):
            assert row["psnr"] == pytest.approx(psnr(reference[z], stack[z], data_range=255), rel=1e-9)
            assert row["ssim"] == pytest.approx(ssim(reference[z], stack[z], data_range=255), rel=1e-9)
            assert row["frc_mean"] == pytest.approx(frc_curve(reference[z], stack[z]).mean, rel=1e-9)
            curves.append(frc_curve(reference[z], stack[z], window="hann", pixel_size=10.0))
        assert scores["psnr"] == pytest.approx(np.mean([r["psnr"] for r in scores["per_slice"]]))
        assert scores["frc_mean"] == pytest.approx(np.mean([r["frc_mean"] for r in scores["per_slice"]]))
        pooled = frc_resolution(frc_pool(curves), threshold="1/7")
        assert scores["frc_resolution_reached"] == pooled.reached, name
        if pooled.reached:
            assert scores["frc_resolution_nm"] == pytest.approx(pooled.resolution_nm, rel=1e-9), name
    # a lightly smoothed reference is far closer to it than the bicubic up-sampling of a degraded LR
    bic = report["bicubic"]
    assert report["psnr"] > bic["psnr"] + 5 and report["ssim"] > bic["ssim"] + 0.1
    assert report["frc_mean"] > bic["frc_mean"] + 0.1
    # bicubic x3: near the LR Nyquist period (2 LR pixels = 60 nm), and never below 30 nm, where the
    # down-sampling kernel (a cubic widened 3x) has its first zero; the smoothed reference keeps
    # FRC > 1/7 up to the HR Nyquist limit (a sigma 0.6 px Gaussian passes 17 % there)
    assert bic["frc_resolution_reached"] and SCALE * 10 < bic["frc_resolution_nm"] < 4 * SCALE * 10
    assert not report["frc_resolution_reached"] and report["frc_resolution_nm"] is None
    assert report["frc_window"] is None and report["frc_resolution_window"] == "hann"
    # without a window, the border artefact both images share keeps the bicubic FRC above 1/7
    out_paper = volumes["folder"] / "paper.json"
    assert main([*argv, "--resolution-window", "none", "--json", str(out_paper)]) == 0
    paper = json.loads(out_paper.read_text())
    assert not paper["bicubic"]["frc_resolution_reached"] and paper["bicubic"]["frc_mean"] == bic["frc_mean"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(png)
    assert image.shape[:2] == (540, 840) and image[..., :3].std() > 10  # drawn, not blank


def test_mismatched_shapes_exit_with_one_line(volumes, capsys):
    p, folder = volumes["paths"], volumes["folder"]
    cases = {
        "short.tif": (volumes["prediction"][:, :150], "use --crop"),
        "fewer.tif": (volumes["prediction"][:3], "4 slice(s)"),
    }
    for name, (array, message) in cases.items():
        write(folder / name, array)
        assert main(["evaluate", str(p["reference"]), str(folder / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("emsr evaluate: error:") and message in err and "\n" not in err
    write(folder / "odd_lr.tif", volumes["lr"][:, :50, :])
    assert main(["evaluate", str(p["reference"]), str(p["prediction"]), "--lr", str(folder / "odd_lr.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert "integer multiple" in err and "\n" not in err
    # --crop accepts a border, not a different field
    assert main(["evaluate", str(p["reference"]), str(folder / "short.tif"), "--crop"]) == 2
    assert "more than a border" in capsys.readouterr().err


def test_crop_compares_the_common_top_left_region(volumes, capsys):
    p, folder = volumes["paths"], volumes["folder"]
    reference, prediction = volumes["reference"], volumes["prediction"][:, :189, :189]
    write(folder / "cropped.tif", prediction)
    out = folder / "cropped.json"
    assert main(["evaluate", str(p["reference"]), str(folder / "cropped.tif"), "--crop", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["crop"] == "top-left" and report["compared_shape"] == [189, 189]
    assert report["per_slice"][2]["psnr"] == pytest.approx(psnr(reference[2, :189, :189], prediction[2]))
    assert report["pixel_size_nm"] is None and report["frc_resolution_nm"] is None
    assert "unknown" in capsys.readouterr().out


def test_float_data_states_its_range(volumes, capsys):
    folder = volumes["folder"]
    reference = volumes["reference"][:2].astype(np.float32) / 255
    prediction = volumes["prediction"][:2].astype(np.float32) / 255
    write(folder / "ref_f.tif", reference)
    write(folder / "pred_f.tif", prediction)
    out = folder / "float.json"
    assert main(["evaluate", str(folder / "ref_f.tif"), str(folder / "pred_f.tif"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["data_range"] == pytest.approx(float(reference.max() - reference.min()))
    assert "max - min" in report["data_range_source"] and "max - min" in capsys.readouterr().out
    given = folder / "given.json"
    pair = [str(folder / "ref_f.tif"), str(folder / "pred_f.tif")]
    argv = ["evaluate", *pair, "--data-range", "1", "--json", str(given)]
    assert main(argv) == 0
    report = json.loads(given.read_text())
    assert report["per_slice"][0]["psnr"] == pytest.approx(psnr(reference[0], prediction[0], data_range=1.0))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("emsr evaluate: error:") and "\n" not in err, err
    return err


def test_bad_values_are_named_by_file_and_slice(volumes, capsys):
    """NaN/inf or a constant slice: the message names the user's file (and its role), never 'a' or 'b'."""
    p, folder = volumes["paths"], volumes["folder"]
    nan_pred = volumes["prediction"].astype(np.float32)
    nan_pred[2, 10, 10] = np.nan
    write(folder / "nan_pred.tif", nan_pred)
    assert main(["evaluate", str(p["reference"]), str(folder / "nan_pred.tif")]) == 2
    err = _one_line_error(capsys)
    assert f"{folder / 'nan_pred.tif'} (the prediction): slice 2 has 1 NaN or infinite value" in err
    assert " b " not in err and not err.split("error: ", 1)[1].startswith(("a ", "b "))

    nan_ref = volumes["reference"].astype(np.float32)
    nan_ref[1, 0, 0] = np.inf
    write(folder / "inf_ref.tif", nan_ref)
    assert main(["evaluate", str(folder / "inf_ref.tif"), str(p["prediction"]), "--data-range", "255"]) == 2
    assert f"{folder / 'inf_ref.tif'} (the reference): slice 1 has 1 NaN or infinite value" in _one_line_error(capsys)
    assert main(["evaluate", str(folder / "inf_ref.tif"), str(p["prediction"])]) == 2  # range from the data
    assert f"{folder / 'inf_ref.tif'} (the reference)" in _one_line_error(capsys)

    inf_lr = volumes["lr"].astype(np.float32)
    inf_lr[3, 4, 5] = -np.inf
    write(folder / "inf_lr.tif", inf_lr)
    assert main(["evaluate", str(p["reference"]), str(p["prediction"]), "--lr", str(folder / "inf_lr.tif")]) == 2
    assert f"{folder / 'inf_lr.tif'} (the LR input): slice 3 has 1 NaN or infinite value" in _one_line_error(capsys)

    flat = volumes["prediction"].copy()
    flat[1] = 128
    write(folder / "flat_pred.tif", flat)
    assert main(["evaluate", str(p["reference"]), str(folder / "flat_pred.tif")]) == 2
    err = _one_line_error(capsys)
    assert f"{folder / 'flat_pred.tif'} (the prediction): slice 1 is constant" in err and "image b" not in err


def test_library_hints_are_phrased_as_options_of_the_command(volumes, capsys):
    p, folder = volumes["paths"], volumes["folder"]
    write(folder / "narrow.tif", volumes["prediction"][:, 2:-2, 1:-1])
    assert main(["evaluate", str(p["reference"]), str(folder / "narrow.tif")]) == 2
    err = _one_line_error(capsys)
    assert err == (
        f"emsr evaluate: error: scoring {folder / 'narrow.tif'} (the prediction) against {p['reference']} (the "
        "reference): slice shapes differ: reference (192, 192), prediction (188, 190): use --crop if they differ "
        "only by a border at the bottom and right, or use --crop --crop-anchor centre if they differ by a border "
        "all round"
    )
    assert "crop=" not in err
    assert main(["evaluate", str(p["reference"]), str(p["prediction"]), "--data-range", "-1"]) == 2
    err = _one_line_error(capsys)
    assert "the data range must be a positive finite number, got -1" in err and "give --data-range L above 0" in err


def test_the_command_reports_the_library_evaluation(volumes, capsys):
    """emsr evaluate's numbers are evaluate_stack's (the one job, the one pooling) on the same pixels."""
    p, folder = volumes["paths"], volumes["folder"]
    reference, narrow = volumes["reference"], volumes["prediction"][:, 2:-2, 1:-1]
    write(folder / "narrow.tif", narrow)
    out = folder / "centre.json"
    argv = ["evaluate", str(p["reference"]), str(folder / "narrow.tif"), "--crop", "--crop-anchor", "centre"]
    assert main([*argv, "--pixel-size", "10", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    expected = evaluate_stack(reference, narrow, pixel_size=10.0, crop="centre").summary()
    assert report["data_range"] == 255 and report["data_range_source"] == "from the reference's dtype (uint8)"
    for key, value in expected.items():
        if key not in ("label",):
            assert report[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    assert "data range: 255 (from the reference's dtype (uint8))" in capsys.readouterr().out


def test_z_consistency_of_the_prediction_and_of_bicubic(volumes, capsys):
    from napari_emsr.metrics import z_consistency

    p = volumes["paths"]
    out = volumes["folder"] / "z.json"
    argv = ["evaluate", str(p["reference"]), str(p["prediction"]), "--lr", str(p["lr"]), "--z-consistency"]
    assert main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "z-consistency of prediction against the LR input: flicker index" in text
    assert "xz / yz mean FRC n/a (< 8 slices)" in text  # four slices
    report = json.loads(out.read_text())["z_consistency"]
    expected = z_consistency(volumes["prediction"], volumes["lr"].astype(float), scale=SCALE)
    assert report["prediction"]["flicker_index"] == pytest.approx(expected.flicker_index)
    assert set(report) == {"prediction", "bicubic"}
    assert main(["evaluate", str(p["reference"]), str(p["prediction"]), "--z-consistency"]) == 2
    assert "give --lr LR_FILE too" in capsys.readouterr().err
