"""tile="auto": timed candidates on this device, the fastest for the slice kept, cached."""

import json

import numpy as np
import pytest

from napari_emsr import iter_super_resolve, super_resolve
from napari_emsr.cli import main
from napari_emsr.predict import autotile

from ._predict_models import sensitive_model

pytestmark = pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "napari-emsr" / "tiles.json"


def first_device():
    import torch

    return torch.device("cpu")


def test_candidates_are_on_the_window_grid_and_not_beyond_the_slice():
    import torch

    cpu = torch.device("cpu")
    assert autotile.candidates(cpu, 8, (2000, 3000)) == [128, 256, 512]
    assert autotile.candidates(cpu, 8, (150, 90)) == [128, 152]  # one 152-px tile covers the slice
    assert autotile.candidates(cpu, 12, (2000, 2000)) == [132, 264, 516]


def test_auto_tile_times_the_candidates_keeps_the_fastest_and_caches_it(em_slice, cache, monkeypatch):
    model = sensitive_model(2)
    x = em_slice[:300, :300]
    first = next(iter_super_resolve(x, model, tile="auto", overlap=8)).payload
    choice = first.tile_choice
    window = model.config.window_size
    assert not choice["cached"] and set(choice["seconds"]) == {str(t) for t in autotile.candidates(first_device(), window, (300, 300))}
    assert len(choice["seconds"]) == 3
    assert first.tile == int(min(choice["seconds"], key=choice["seconds"].get))  # the cheapest slice
    stored = json.loads(cache.read_text())
    [(key, entry)] = stored.items()
    assert entry["tile"] == first.tile and "cpu:" in key and "|300|300|8|" in key
    # a second run takes the cached choice without timing again
    again = next(iter_super_resolve(x, model, tile="auto", overlap=8)).payload
    assert again.tile_choice["cached"] and again.tile == first.tile
    # the output is the engine's output at the chosen tile
    np.testing.assert_array_equal(super_resolve(x, model, tile="auto", overlap=8), super_resolve(x, model, tile=first.tile, overlap=8))


def test_a_cache_that_cannot_be_written_is_ignored(em_slice, tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    for _ in range(2):  # nothing is stored, nothing fails: each run times again
        plan = next(iter_super_resolve(em_slice[:64, :64], sensitive_model(2), tile="auto")).payload
        assert not plan.tile_choice["cached"] and str(plan.tile) in plan.tile_choice["seconds"]


def test_cli_tile_auto_prints_the_timings(em_slice, cache, tmp_path, capsys):
    import tifffile

    from napari_emsr import save_model

    tifffile.imwrite(tmp_path / "in.tif", em_slice[:200, :200])
    model = save_model(sensitive_model(2), tmp_path / "m.safetensors")
    assert main(["predict", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"), "--model", str(model), "--tile", "auto"]) == 0
    err = capsys.readouterr().err
    assert "(auto: 128 " in err and " s per slice)" in err
    with pytest.raises(SystemExit) as exited:
        main(["predict", str(tmp_path / "in.tif"), str(tmp_path / "o2.tif"), "--model", str(model), "--tile", "big"])
    assert exited.value.code == 2
    assert "expected a whole number of pixels or auto, got 'big'" in capsys.readouterr().err


def test_a_distributed_run_asks_for_a_number(tmp_path):
    from napari_emsr.predict.distributed import iter_super_resolve_distributed

    with pytest.raises(ValueError, match="tile 'auto' times the network on the device that plans the run"):
        next(iter_super_resolve_distributed(str(tmp_path / "in.tif"), output=str(tmp_path / "o.ome.zarr"), tile="auto"))
