"""Faults during training, on real `emsr train` / `emsr finetune` runs.

A run (an ``emsr train`` subprocess) killed outright (SIGKILL) or stopped with Ctrl-C (SIGINT) at
a random moment, then resumed, ends with exactly the weights, optimizer state, random generator
states, validation history and best model of an uninterrupted run. The uninterrupted and resumed
runs go through ``main`` in this process, with one thread like the subprocesses (and so the same
arithmetic), which keeps the module fast on a busy machine. A run whose disk fills up stops with one line that says so
and names the file, and leaves the previous best model and checkpoint intact and no temporary
behind; resumed elsewhere, it again ends like the uninterrupted run.

Data: 6 crops of 96 x 96 pixels of FlyEM FIB-SEM slices (FlyEM project, Janelia Research Campus
(HHMI), CC BY 3.0; cropped here) as one TIFF. The full disk is a small tmpfs (mounted as root), or,
where mounting is not allowed, a file-size limit (RLIMIT_FSIZE).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from skimage.io import imread

import napari_emsr
from napari_emsr import build_emsr, load_model, save_model
from napari_emsr.cli import main
from napari_emsr.resample import bicubic_downsample
from napari_emsr.training import checkpoint_path
from napari_emsr.training.checkpoint import load_checkpoint

# real training runs in subprocesses, killed and resumed
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

STEPS, VAL_EVERY = 16, 4
TRAIN = ["--strategy", "synthetic-ii", "--preset", "lite", "--patch", "16", "--steps", str(STEPS),
         "--val-every", str(VAL_EVERY), "--val-slices", "last:1", "--device", "cpu", "--seed", "3"]  # fmt: skip
SRC = str(Path(napari_emsr.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def crops(data_dir, tmp_path_factory) -> Path:
    """HR: 6 successive FlyEM slices, 96 x 96 crops at 10 nm; LR: their bicubic x3 reduction at 30 nm."""
    folder = tmp_path_factory.mktemp("faults-data")
    files = sorted((data_dir / "training_sample2").glob("*.png"))[20:26]
    hr = np.stack([imread(f)[100:196, 80:176] for f in files])
    lr = np.clip(np.rint(bicubic_downsample(hr.astype(np.float64), 3)), 0, 255).astype(np.uint8)
    um = {"unit": "um", "axes": "ZYX"}
    tifffile.imwrite(folder / "hr.tif", hr, imagej=True, resolution=(100, 100), metadata=um)
    tifffile.imwrite(folder / "lr.tif", lr, imagej=True, resolution=(100 / 3, 100 / 3), metadata=um)
    tifffile.imwrite(folder / "hr_field.tif", hr[1:5, 12:84, 12:84], imagej=True, resolution=(100, 100), metadata=um)
    return folder




def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=SRC)
    env.pop("EMSR_DEVICE", None)
    return env


def _argv(crops: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--hr", str(crops / "hr.tif"), "--out", str(out), *TRAIN, *extra]


def _train(crops: Path, out: Path, *extra: str) -> list[str]:
    """The command line of an ``emsr train`` subprocess."""
    return [sys.executable, "-m", "napari_emsr.cli", *_argv(crops, out, *extra)]


def _main(capsys, argv: list[str]) -> tuple[int, str]:
    """``emsr ARGV`` in this process: (exit status, stderr)."""
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def _start_and_wait_for_checkpoint(command: list[str], ckpt: Path) -> subprocess.Popen:
    """Start a run and return once its first checkpoint (step VAL_EVERY) is on disk."""
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not ckpt.exists():
        assert proc.poll() is None, f"the run ended (status {proc.returncode}) before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.01)
    return proc


def _state(out: Path) -> dict:
    """Everything a run ends with: last state (weights, Adam, generators, progress) and best model."""
    model, optim, generators, progress = load_checkpoint(checkpoint_path(out))
    return {"model": model.state_dict(), "optim": optim["state"], "generators": generators, "progress": progress,
            "best": load_model(out).state_dict()}  # fmt: skip


def _assert_same_run(expected: dict, out: Path) -> None:
    got = _state(out)
    for part in ("model", "best"):
        for name, tensor in expected[part].items():
            assert torch.equal(tensor, got[part][name]), f"{part}: {name}"
    for pid, entry in expected["optim"].items():
        for key, value in entry.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(got["optim"][pid][key])), (pid, key)
    assert all(torch.equal(v, got["generators"][k]) for k, v in expected["generators"].items())
    for key in ("step", "history", "best"):
        assert got["progress"][key] == expected["progress"][key], key


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial") or p.name.startswith("."))


@pytest.fixture(scope="module")
def straight(crops, tmp_path_factory) -> tuple[dict, int, int]:
    """The uninterrupted run: its final state, and the sizes of its model file and checkpoint."""
    out = tmp_path_factory.mktemp("straight") / "m.safetensors"
    assert main(_argv(crops, out)) == 0
    return _state(out), out.stat().st_size, checkpoint_path(out).stat().st_size


def test_sigkill_then_resume_ends_like_an_uninterrupted_run(crops, straight, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    proc = _start_and_wait_for_checkpoint(_train(crops, out), checkpoint_path(out))
    time.sleep(0.05)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert VAL_EVERY <= load_checkpoint(checkpoint_path(out))[3]["step"] < STEPS  # killed mid-run
    code, err = _main(capsys, _argv(crops, out, "--resume"))
    assert code == 0, err
    _assert_same_run(straight[0], out)
    assert _leftovers(tmp_path) == []


def test_sigint_then_resume_ends_like_an_uninterrupted_run(crops, straight, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    proc = _start_and_wait_for_checkpoint(_train(crops, out), checkpoint_path(out))
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    stopped = load_checkpoint(checkpoint_path(out))[3]["step"]
    assert VAL_EVERY <= stopped < STEPS  # stopped mid-run, and its state saved where it stopped
    assert _leftovers(tmp_path) == []
    code, err = _main(capsys, _argv(crops, out, "--resume"))
    assert code == 0, err
    _assert_same_run(straight[0], out)
    assert _leftovers(tmp_path) == []


# -- a full disk ------------------------------------------------------------------------------------
@contextmanager
def _small_disk(folder: Path, size: int):
    """``folder`` as a tmpfs of ``size`` bytes; yields False where mounting is not allowed (not root)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0  # fmt: skip
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=True)


@contextmanager
def _file_size_limit(limit: int):
    """RLIMIT_FSIZE for this process (Python ignores SIGXFSZ: writes beyond it fail with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _disk_sizes(straight) -> tuple[int, int]:
    """A disk size on which the first best model and checkpoint fit, a second best model fits while
    they are there, and a second checkpoint does not (2M + C < S < M + 2C); and a file-size limit
    between the model file and the checkpoint, for where no tmpfs can be mounted."""
    model, ckpt = straight[1], straight[2]
    return 3 * (model + ckpt) // 2, (model + ckpt) // 2


def _one_line_error(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith(f"emsr {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_train_on_a_full_disk_says_so_and_keeps_its_files(crops, straight, tmp_path, capsys):
    disk = tmp_path / "disk"
    size, limit = _disk_sizes(straight)
    with _small_disk(disk, size) as mounted:
        out, ckpt = disk / "m.safetensors", checkpoint_path(disk / "m.safetensors")
        if mounted:
            code, err = _main(capsys, _argv(crops, out))
        else:
            with _file_size_limit(limit):
                code, err = _main(capsys, _argv(crops, out))
        line = _one_line_error(err, "train")
        assert code == 2 and str(ckpt) in line and "nothing was replaced" in line
        assert _leftovers(disk) == []
        best = load_model(out)  # the best model so far is whole
        if not mounted:  # the first checkpoint was already too large
            assert "file-size limit" in line and not ckpt.exists() and best.metadata.provenance["steps"] == VAL_EVERY
            return
        assert "the disk is full" in line and "--resume" in line
        assert load_checkpoint(ckpt)[3]["step"] == VAL_EVERY  # the last checkpoint is whole
        assert best.metadata.provenance["steps"] in (VAL_EVERY, 2 * VAL_EVERY)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        for path in (out, ckpt):
            shutil.copy2(path, elsewhere / path.name)
    code, err = _main(capsys, _argv(crops, elsewhere / out.name, "--resume"))
    assert code == 0, err
    _assert_same_run(straight[0], elsewhere / out.name)


def test_finetune_on_a_full_disk_says_so_and_keeps_its_files(crops, straight, tmp_path, capsys):
    disk = tmp_path / "disk"
    size, limit = _disk_sizes(straight)
    argv = ["finetune", "--lr", str(crops / "lr.tif"), "--hr", str(crops / "hr_field.tif"), "--offset", "1,4,4",
            "--preset", "lite", "--patch", "16", "--steps", "12", "--val-every", "4", "--val-slices", "last:1",
            "--device", "cpu"]  # fmt: skip
    with _small_disk(disk, size) as mounted:
        out = disk / "ft.safetensors"
        if mounted:
            code, err = _main(capsys, [*argv, "--out", str(out)])
        else:
            with _file_size_limit(limit):
                code, err = _main(capsys, [*argv, "--out", str(out)])
        line = _one_line_error(err, "finetune")
        assert code == 2 and str(checkpoint_path(out)) in line and _leftovers(disk) == []
        assert load_model(out).metadata.trained
        if mounted:
            assert "the disk is full" in line and load_checkpoint(checkpoint_path(out))[3]["step"] == 4


def test_save_model_on_a_full_disk_keeps_the_previous_file(straight, tmp_path):
    """Replacing a small model file by a larger one that does not fit: an error, the small one intact."""
    from napari_emsr.model_io import ModelWriteError

    disk = tmp_path / "disk"
    torch.manual_seed(0)
    small = build_emsr(scale=3, channels=8, num_blocks=1, num_res_blocks=1, num_heads=2)
    with _small_disk(disk, straight[1] // 2) as mounted:
        path = save_model(small, disk / "m.safetensors")
        before = path.read_bytes()
        with pytest.raises(ModelWriteError) as info:
            if mounted:
                save_model(build_emsr("lite"), path, overwrite=True)
            else:
                with _file_size_limit(straight[1] // 2):
                    save_model(build_emsr("lite"), path, overwrite=True)
        assert str(path) in str(info.value) and "nothing was replaced" in str(info.value)
        assert info.value.errno in (28, 27)  # ENOSPC, EFBIG
        assert path.read_bytes() == before and _leftovers(disk) == []
