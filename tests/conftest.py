"""Shared fixtures: seeded data, tiny configs, and the real FlyEM FIB-SEM data from ../shared/data."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [os.environ.get("EMSR_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"]
DATA = next(
    (Path(p) / "flyem-medulla-fibsem" for p in _CANDIDATES if p and (Path(p) / "flyem-medulla-fibsem").is_dir()),
    ROOT.parent / "shared" / "data" / "flyem-medulla-fibsem",
)

#: the smallest configs that still contain every part of the network
TINY = dict(channels=8, num_blocks=1, num_res_blocks=1, num_path_blocks=1, num_heads=2, window_size=4, mlp_ratio=2.0)


def pytest_configure(config):
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    # A shell without job control starts a background job (``./scripts/test.sh &``, nohup) with
    # SIGINT ignored, and an ignored signal stays ignored in every process it starts: the Ctrl-C
    # tests (a real SIGINT to this process or to an emsr subprocess) would then see no interrupt.
    # Python's own handler is reset on exec, so the subprocesses get the default back too.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny training runs: steps this small gain nothing from
    threads, and on a busy machine two threads make each step up to ten times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The FlyEM FIB-SEM data (CC BY 3.0, FlyEM project, Janelia). Missing data is a failure, not a skip."""
    if not DATA.is_dir():
        pytest.fail(f"test data not found at {DATA}; set EMSR_DATA to the folder holding flyem-medulla-fibsem")
    return DATA


@pytest.fixture(scope="session")
def em_slice(data_dir) -> np.ndarray:
    """One real 520 x 520 uint8 slice of the held-out validation stack."""
    import tifffile  # noqa: F401  (keeps the image stack of the test session uniform)
    from skimage.io import imread

    first = sorted((data_dir / "validation_sample").glob("*.png"))[0]
    return imread(first)
