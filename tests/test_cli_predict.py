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
        full = vol.data.compute()
    # the multiscale pyramid, written with each slice: 1040 -> 520 -> 260
    import zarr

    from napari_emsr.io.writers import halve

    group = zarr.open_group(str(out), mode="r")
    assert [group[d["path"]].shape for d in group.attrs["multiscales"][0]["datasets"]] == [
        (4, 1040, 1040), (4, 520, 520), (4, 260, 260)]  # fmt: skip
    np.testing.assert_array_equal(group["1"][2], halve(full[2]))
    assert main(argv + ["--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    flat = tmp_path / "flat.ome.zarr"
    assert main(argv[:2] + [str(flat)] + argv[3:] + ["--no-pyramid"]) == 0
    assert len(zarr.open_group(str(flat), mode="r").attrs["multiscales"][0]["datasets"]) == 1


def test_self_ensemble_flag(files, tmp_path, capsys):
    out = tmp_path / "se.ome.tif"
    assert main(["predict", str(files["tif"]), str(out), "--model", str(files["model"]), "--self-ensemble"]) == 0
    assert "self-ensemble" in capsys.readouterr().err
    expected = super_resolve(files["stack"], files["model"], self_ensemble=True)
    with open_volume(out) as vol:
        np.testing.assert_array_equal(vol.data.compute(), expected)
        assert np.abs(vol.data.compute().astype(int) - super_resolve(files["stack"], files["model"])).max() > 0


def test_uncertainty_flag_writes_the_map_and_refuses_what_cannot_work(files, tmp_path, capsys):
    out, mapped = tmp_path / "sr.ome.tif", tmp_path / "sr-uncertainty.ome.tif"
    argv = ["predict", str(files["tif"]), str(out), "--model", str(files["model"]), "--tile", "16"]
    assert main(argv + ["--uncertainty", str(mapped)]) == 0
    captured = capsys.readouterr()
    assert "self-ensemble" in captured.err  # implied
    assert captured.out.strip().splitlines()[-1] == (
        f"emsr predict: uncertainty map (std of the 8 flips/rotations, float32 grey levels) -> {mapped}")
    from napari_emsr.predict.uncertainty import ensemble_spread

    mean, spread = ensemble_spread(files["stack"], files["model"], tile=16)
    with open_volume(out) as vol, open_volume(mapped) as umap:
        np.testing.assert_array_equal(vol.data.compute(), mean)
        np.testing.assert_array_equal(umap.data.compute(), spread)
        assert umap.pixel_size_nm == pytest.approx((None, 5.0, 5.0))
    folder = tmp_path
    _fails(argv[:2] + [str(tmp_path / "b.ome.tif")] + argv[3:] + ["--uncertainty", str(mapped)], capsys,
           "sr-uncertainty.ome.tif exists; pass --overwrite to replace it", folder)  # fmt: skip
    _fails(argv[:2] + [str(tmp_path / "b.ome.tif")] + argv[3:] + ["--uncertainty", str(tmp_path / "b.ome.tif")],
           capsys, "is also OUTPUT", folder)  # fmt: skip
    _fails(argv[:2] + [str(tmp_path / "b.ome.zarr")] + argv[3:] + ["--uncertainty", str(tmp_path / "u.ome.zarr"),
           "--scheduler", "local:1"], capsys, "--uncertainty is not available with --scheduler", folder)  # fmt: skip
    _fails(argv[:2] + [str(tmp_path / "b.ome.zarr")] + argv[3:] + ["--uncertainty", str(tmp_path / "u.ome.tif"),
           "--resume"], capsys, "only OME-Zarr outputs can be resumed", folder)  # fmt: skip


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

def test_an_enormous_tiff_header_is_one_line_and_leaves_nothing(files, tmp_path, capsys):
    from .test_io import OME_100K, forged_tiff

    forged = forged_tiff(tmp_path / "forged.tif", description=OME_100K)
    for out in ("o.ome.zarr", "o.ome.tif"):
        _fails(["predict", str(forged), str(tmp_path / out), "--model", str(files["model"])], capsys,
               r"forged.tif: the TIFF header claims an image of shape \(100000, 100000, 100000\) uint8 .*truncated",
               tmp_path)  # fmt: skip


def test_unusable_inputs_name_the_file(files, tmp_path, capsys):
    import zarr

    model = ["--model", str(files["model"])]
    line = tmp_path / "line.zarr"
    zarr.create_array(str(line), shape=(10,), dtype="uint8")
    _fails(["predict", str(line), str(tmp_path / "o.ome.zarr"), *model], capsys,
           r"line.zarr: has shape \(10,\) .*must be a 2D image or a 3D", tmp_path)  # fmt: skip
    cut = tmp_path / "cut.tif"
    tifffile.imwrite(cut, np.concatenate([files["stack"]] * 2), compression="zlib")
    with open(cut, "r+b") as fh:
        fh.truncate(cut.stat().st_size // 2)
    _fails(["predict", str(cut), str(tmp_path / "o.ome.zarr"), *model], capsys, r"cut.tif: .*truncated", tmp_path)


def test_a_tile_off_the_window_grid_is_said_once(files, tmp_path, capsys):
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, files["stack"][0, :24, :24])  # a few tiles of 8
    out = tmp_path / "o.ome.tif"
    assert main(["predict", str(small), str(out), "--model", str(files["model"]), "--tile", "7", "--overlap", "4"]) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "tile 7" in line]
    assert len(said) == 1 and "using tile 8" in said[0] and "4-pixel attention window" in said[0], err
    assert "tile 8, halo" in err
    assert main(["predict", str(small), str(tmp_path / "p.ome.tif"), "--model", str(files["model"]),
                 "--tile", "8", "--overlap", "5"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "tile 8" in err and "using tile" not in err
    assert "halo 8 (given 5, rounded up to the 4-pixel attention window;" in err


def test_an_interrupted_run_says_resume_and_the_resumed_run_what_it_reused(files, tmp_path, capsys, monkeypatch):
    import napari_emsr.io.writers as writers

    out = tmp_path / "o.ome.zarr"
    argv = ["predict", str(files["tif"]), str(out), "--model", str(files["model"]), "--tile", "16"]
    real, calls = writers.write_zarr_slice, []

    def interrupted_at_the_third_slice(*args):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run
        real(*args)

    monkeypatch.setattr(writers, "write_zarr_slice", interrupted_at_the_third_slice)
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"emsr predict: interrupted; 2 of 4 slice(s) are done and kept in {writers.partial_path(out)}: "
                       "rerun the same command with --resume to continue")  # fmt: skip
    monkeypatch.setattr(writers, "write_zarr_slice", real)
    assert main(argv) == 2  # the library's PartialOutputError, its hints phrased as this command's flags
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("holds the partial result of an interrupted run: use --resume to continue it, or use "
                        "--overwrite to start again") and "resume=True" not in err  # fmt: skip
    assert main(argv + ["--resume"]) == 0
    captured = capsys.readouterr()
    assert "resuming: 2 of 4 slice(s) already done" in captured.err
    assert captured.out.strip().endswith("; resumed: 2 slice(s) reused from the interrupted run, 2 computed")
    with open_volume(out) as vol:
        np.testing.assert_array_equal(vol.data.compute(), super_resolve(files["stack"], files["model"], tile=16))


def test_an_interrupted_tiff_run_explains_why_it_cannot_resume(files, tmp_path, capsys, monkeypatch):
    import napari_emsr.io.writers as writers

    def interrupted(self, index, plane):
        raise KeyboardInterrupt

    monkeypatch.setattr(writers.OmeTiffWriter, "write", interrupted)
    assert main(["predict", str(files["tif"]), str(tmp_path / "o.ome.tif"), "--model", str(files["model"])]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("emsr predict: interrupted; nothing was written")
    assert "o.ome.zarr" in err and "--resume" in err
    assert list(tmp_path.iterdir()) == []


def test_resuming_after_the_input_changed_says_what_to_do(files, tmp_path, capsys, monkeypatch):
    import napari_emsr.io.writers as writers

    source = tmp_path / "in.ome.tif"
    tifffile.imwrite(source, files["stack"], ome=True, metadata={"axes": "ZYX"})
    out = tmp_path / "o.ome.zarr"
    argv = ["predict", str(source), str(out), "--model", str(files["model"]), "--tile", "16"]
    real = writers.write_zarr_slice
    monkeypatch.setattr(writers, "write_zarr_slice", lambda store, z, plane: real(store, z, plane) if z < 2 else (
        _ for _ in ()).throw(KeyboardInterrupt))  # fmt: skip
    assert main(argv) == 130
    monkeypatch.setattr(writers, "write_zarr_slice", real)
    tifffile.imwrite(source, files["stack"][::-1], ome=True, metadata={"axes": "ZYX"})  # same shape and dtype
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "warning:" not in line]
    assert len(err) == 1 and err[0].startswith("emsr predict: error: cannot resume"), err
    assert "has changed since this partial result was started" in err[0]
    assert err[0].endswith(f"use --overwrite to start again (or delete {writers.partial_path(out)})")
    assert main(argv + ["--overwrite"]) == 0
    with open_volume(out) as vol:
        np.testing.assert_array_equal(vol.data.compute(), super_resolve(files["stack"][::-1], files["model"], tile=16))
