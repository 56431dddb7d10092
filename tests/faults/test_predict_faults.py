"""Fault injection: real ``emsr predict`` processes killed, interrupted and starved of disk space.

Each test runs the command as a subprocess on a few 96 x 96 crops of real FlyEM slices with the
shipped default model, injects the fault while slices are being written, then checks that nothing
is lost and nothing is left behind: no temporary file, nothing under the final name unless it is
complete, the input untouched, a rerun succeeds and an OME-Zarr run resumes to the same result.

The disk is filled for real: a small tmpfs where this machine lets us mount one (root), else a
file-size limit (RLIMIT_FSIZE, what a full disk looks like to one file: EFBIG).
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_emsr import open_volume, super_resolve
from napari_emsr.cli import main
from napari_emsr.io import partial_path

# real prediction runs in subprocesses, killed and resumed
pytestmark = pytest.mark.slow

SLICES = 4
WAIT_S = 90  # a busy 2-core machine; the runs take a few seconds


@pytest.fixture(scope="module")
def crops(data_dir) -> np.ndarray:
    """SLICES real 96 x 96 crops of FlyEM validation slices (uint8, 30 nm pixels)."""
    from skimage.io import imread

    files = sorted((data_dir / "validation_sample").glob("*.png"))[:SLICES]
    return np.stack([imread(f)[200:296, 300:396] for f in files])


@pytest.fixture(scope="module")
def reference(crops, tmp_path_factory) -> dict:
    """The uninterrupted result, and the bytes one output slice takes in an OME-Zarr."""
    folder = tmp_path_factory.mktemp("reference")
    store = super_resolve(crops, None, output=folder / "ref.ome.zarr", pixel_size=30)
    chunk = max(f.stat().st_size for f in (store / "0").rglob("*") if f.is_file() and not f.name.startswith("."))
    with open_volume(store) as vol:
        return {"sr": vol.data.compute(), "chunk_bytes": chunk}


@pytest.fixture
def source(crops, tmp_path) -> Path:
    path = tmp_path / "in" / "lr.ome.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, crops, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.03, "PhysicalSizeY": 0.03})
    return path


def _fingerprint(path: Path) -> tuple:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_size, stat.st_mtime_ns


def _start(source: Path, output: Path, *extra: str, preexec_fn=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "napari_emsr.cli", "predict", str(source), str(output), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=preexec_fn,
    )  # fmt: skip


def _wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"emsr predict ended (status {process.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _tiff_temporaries(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f".{output.name}.*.partial"))


def _one_tiff_page_written(output: Path):
    page = 288 * 288  # one x3 output slice, uint8
    return lambda: any(t.stat().st_size >= page for t in _tiff_temporaries(output) if t.exists())


def _zarr_slices_done(output: Path, count: int = 1):
    done = partial_path(output) / "emsr_done"
    def finished() -> bool:  # chunk files of the done flags, not zarr's metadata or its temporaries
        names = [f.name for f in done.iterdir()] if done.is_dir() else []
        return len([n for n in names if n.isdigit()]) >= count

    return finished


def _stop(process: subprocess.Popen, signum: int) -> tuple[int, str]:
    process.send_signal(signum)
    _, err = process.communicate(timeout=WAIT_S)
    return process.returncode, err


def _last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


def _same_as_reference(path: Path, reference: dict) -> None:
    assert not [p for p in path.rglob("*") if p.name.endswith(".partial")]  # no temporary inside an OME-Zarr
    with open_volume(path) as vol:
        assert vol.shape == reference["sr"].shape and vol.dtype == np.uint8
        # slices of the interrupted run and of the rerun together: the uninterrupted result
        assert np.abs(vol.data.compute().astype(int) - reference["sr"]).max() <= 1


# -- killed outright --------------------------------------------------------------------------
def test_sigkill_mid_ome_tiff_run_the_next_run_removes_the_dead_runs_temporary(source, reference, capsys):
    out = source.parent.parent / "out" / "sr.ome.tif"
    out.parent.mkdir()
    before = _fingerprint(source)
    process = _start(source, out)
    _wait_for(_one_tiff_page_written(out), process, "the first slice was written")
    assert _stop(process, signal.SIGKILL)[0] == -signal.SIGKILL
    stale = _tiff_temporaries(out)
    assert len(stale) == 1 and not out.exists()  # a killed process cannot clean up after itself
    assert main(["predict", str(source), str(out)]) == 0  # the rerun recognises it as a dead run's and removes it
    assert f"warning: removed {stale[0].name}, the temporary file of an earlier run" in capsys.readouterr().err
    assert sorted(out.parent.iterdir()) == [out]
    assert _fingerprint(source) == before
    _same_as_reference(out, reference)


def test_sigkill_mid_ome_zarr_run_resumes_to_the_same_result(source, reference, capsys):
    out = source.parent / "sr.ome.zarr"
    process = _start(source, out)
    _wait_for(_zarr_slices_done(out), process, "the first slice was done")
    assert _stop(process, signal.SIGKILL)[0] == -signal.SIGKILL
    assert not out.exists() and partial_path(out).is_dir()
    assert main(["predict", str(source), str(out)]) == 2  # without --resume the work is not thrown away
    assert "holds the partial result of an interrupted run: use --resume to continue it, or use --overwrite" in (
        capsys.readouterr().err)
    assert main(["predict", str(source), str(out), "--resume"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    reused = int(re.search(r"resumed: (\d+) slice\(s\) reused", summary).group(1))
    assert 1 <= reused < SLICES and summary.endswith(f"{SLICES - reused} computed")
    assert sorted(p.name for p in source.parent.iterdir()) == ["lr.ome.tif", "sr.ome.zarr"]
    _same_as_reference(out, reference)


# -- stopped cleanly --------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_ome_tiff_run_removes_its_temporary(source, signum):
    out = source.parent / "sr.ome.tif"
    before = _fingerprint(source)
    process = _start(source, out)
    _wait_for(_one_tiff_page_written(out), process, "the first slice was written")
    code, err = _stop(process, signum)
    assert code == 128 + signum, err
    how = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    assert _last_line(err).startswith(f"emsr predict: {how}; nothing was written"), err
    assert "--resume" in _last_line(err) and "Traceback" not in err
    assert sorted(source.parent.iterdir()) == [source]  # no temporary, nothing under the final name
    assert _fingerprint(source) == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_ome_zarr_run_says_resume_and_resumes(source, reference, signum, capsys):
    out = source.parent / "sr.ome.zarr"
    process = _start(source, out)
    _wait_for(_zarr_slices_done(out), process, "the first slice was done")
    code, err = _stop(process, signum)
    assert code == 128 + signum, err
    how = "terminated \\(SIGTERM\\)" if signum == signal.SIGTERM else "interrupted"
    assert re.fullmatch(
        rf"emsr predict: {how}; [1-9] of {SLICES} slice\(s\) are done and kept in "
        rf"{re.escape(str(partial_path(out)))}: rerun the same command with --resume to continue",
        _last_line(err),
    ), err
    assert not out.exists() and "Traceback" not in err
    if signum == signal.SIGTERM:  # resuming it is the same as after SIGINT or SIGKILL, tested there
        return
    assert main(["predict", str(source), str(out), "--resume"]) == 0
    assert "reused from the interrupted run" in capsys.readouterr().out
    _same_as_reference(out, reference)


def test_a_killed_run_with_an_uncertainty_map_resumes_both(source, capsys):
    """--uncertainty: SIGKILL mid-run keeps both partial stores; --resume completes both, equal to one whole run."""
    from napari_emsr.predict.uncertainty import ensemble_spread

    out, mapped = source.parent / "sr.ome.zarr", source.parent / "sr-uncertainty.ome.zarr"
    process = _start(source, out, "--uncertainty", str(mapped))
    _wait_for(_zarr_slices_done(out), process, "the first slice was done")
    assert _stop(process, signal.SIGKILL)[0] == -signal.SIGKILL
    assert partial_path(out).is_dir() and partial_path(mapped).is_dir() and not out.exists() and not mapped.exists()
    assert main(["predict", str(source), str(out), "--uncertainty", str(mapped), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"resumed: [1-9] slice\(s\) reused", printed) and "uncertainty map" in printed
    assert sorted(p.name for p in source.parent.iterdir()) == ["lr.ome.tif", "sr-uncertainty.ome.zarr", "sr.ome.zarr"]
    with open_volume(source) as vol:
        mean, spread = ensemble_spread(vol.data.compute(), None, pixel_size=30)
    with open_volume(out) as vol, open_volume(mapped) as umap:
        assert np.abs(vol.data.compute().astype(int) - mean).max() <= 1
        assert umap.dtype == np.float32 and np.abs(umap.data.compute() - spread).max() < 0.05


def test_a_stopped_run_with_an_uncertainty_map_leaves_neither(source):
    out, mapped = source.parent / "sr.ome.tif", source.parent / "u.ome.tif"
    process = _start(source, out, "--uncertainty", str(mapped))
    _wait_for(_one_tiff_page_written(out), process, "the first slice was written")
    code, err = _stop(process, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err
    assert _last_line(err).startswith("emsr predict: terminated (SIGTERM); nothing was written"), err
    assert "Traceback" not in err
    assert sorted(source.parent.iterdir()) == [source]  # neither temporary is left


# -- a full disk --------------------------------------------------------------------------------
class SmallDisk:
    """A folder with little room: a tmpfs of ``size`` bytes, or (without mount rights) any folder
    with a file-size limit of ``size`` bytes for the command."""

    def __init__(self, root: Path, size: int) -> None:
        self.folder = root / "disk"
        self.folder.mkdir()
        self.size = -(-size // 4096) * 4096
        try:
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.folder)], capture_output=True
            ).returncode == 0
        except OSError:  # no mount command
            mounted = False
        self.tmpfs = mounted

    def preexec(self):
        if self.tmpfs:
            return None
        size = self.size
        return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    def used(self) -> int:
        return shutil.disk_usage(self.folder).used if self.tmpfs else sum(
            f.stat().st_size for f in self.folder.rglob("*") if f.is_file()
        )  # fmt: skip

    def grow(self) -> None:
        """Make room (the command's limit applies to its own process only)."""
        if self.tmpfs:
            subprocess.run(["mount", "-o", "remount,size=64m", str(self.folder)], check=True)

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    disks = []

    def make(size: int) -> SmallDisk:
        disks.append(SmallDisk(tmp_path, size))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


def _file_size_limit(size: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_a_full_disk_leaves_it_as_it_was_and_says_so(source, reference, small_disk, capsys):
    disk = small_disk(SLICES * 288 * 288 // 2)  # room for half the OME-TIFF
    out = disk.folder / "sr.ome.tif"
    used = disk.used()
    process = _start(source, out, preexec_fn=disk.preexec())
    _, err = process.communicate(timeout=WAIT_S)
    assert process.returncode == 2, err
    errors = [line for line in err.strip().splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    full = "the file-size limit of this process (ulimit -f) was reached" if not disk.tmpfs else "the disk is full"
    assert errors[0].startswith(f"emsr predict: error: {full}"), err
    assert re.search(r"the output needs \d+\.\d KiB", errors[0]) and "nothing was left behind" in errors[0]
    assert list(disk.folder.iterdir()) == [] and disk.used() == used  # no temporary, no partial file
    disk.grow()
    assert main(["predict", str(source), str(out)]) == 0
    _same_as_reference(out, reference)


def test_a_file_size_limit_is_a_full_disk_too(source):
    """RLIMIT_FSIZE on the command itself: EFBIG (SIGXFSZ is ignored by Python), whatever the disk."""
    out = source.parent / "sr.ome.tif"
    process = _start(source, out, preexec_fn=_file_size_limit(120 * 1024))
    _, err = process.communicate(timeout=WAIT_S)
    assert process.returncode == 2, err
    line = _last_line(err)
    assert line.startswith("emsr predict: error: the file-size limit of this process (ulimit -f) was reached"), err
    assert "nothing was left behind" in line and "Traceback" not in err
    assert sorted(source.parent.iterdir()) == [source]


def test_a_full_disk_keeps_an_ome_zarrs_finished_slices_for_resume(source, reference, small_disk, capsys):
    slice_bytes = -(-reference["chunk_bytes"] // 4096) * 4096 + 4096  # a chunk and its done flag, in blocks
    disk = small_disk(48 * 1024 + slice_bytes * 3 // 2)  # the metadata, then room for about one slice
    out = disk.folder / "sr.ome.zarr"
    if not disk.tmpfs:  # chunks are written one file each: a file-size limit below one chunk
        disk.size = reference["chunk_bytes"] // 2
    process = _start(source, out, preexec_fn=disk.preexec())
    _, err = process.communicate(timeout=WAIT_S)
    assert process.returncode == 2, err
    line = _last_line(err)
    assert "Traceback" not in err and not out.exists(), err
    if disk.tmpfs:
        assert line.startswith("emsr predict: error: the disk is full"), err
        assert re.search(r"the output needs up to \d+\.\d KiB", line)
        assert re.search(r"the [1-9] finished slice\(s\) are kept in .*: use --resume after making room$", line), err
        disk.grow()
        assert main(["predict", str(source), str(out), "--resume"]) == 0
        assert "reused from the interrupted run" in capsys.readouterr().out
    else:  # no slice could be finished: nothing is kept, a plain rerun works
        assert "nothing was left behind" in line and list(disk.folder.iterdir()) == []
        assert main(["predict", str(source), str(out)]) == 0
    assert sorted(p.name for p in disk.folder.iterdir()) == ["sr.ome.zarr"]
    _same_as_reference(out, reference)
