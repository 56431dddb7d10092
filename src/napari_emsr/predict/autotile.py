"""``tile="auto"``: the tile size chosen by timing the network on this device, for this slice.

The default tile (on a CPU 256, 512 in bf16; 1024 on a GPU) comes from a table measured on one
machine; the best tile depends on the device, its libraries, the model, the precision and the slice. With
``PredictOptions(tile="auto")`` (``emsr predict --tile auto``) the plan times one full window
(core + halo + cross-fade) of each candidate tile, the table's tile halved, as is and doubled (on
the attention-window grid, no larger than the slice needs), and keeps the one whose whole slice
costs least: windows per slice x seconds per window. The choice is cached per device, model,
precision, slice shape and halo in ``$XDG_CACHE_HOME/napari-emsr/tiles.json`` (default
``~/.cache``), so later runs, and a resumed run, take it without timing again; a cache that cannot
be read or written is ignored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_emsr.device import default_tile
from napari_emsr.tiling import default_blend, snap_up, window_span

__all__ = ["TileChoice", "choose_tile", "cache_path"]

#: timed forward passes per candidate (after one untimed warm-up: kernels are built per shape)
REPEATS = 2


class TileChoice(dict):
    """The chosen ``tile``, the ``seconds`` per slice of each candidate, and whether it was ``cached``."""


def cache_path() -> Path:
    """Return where the choices are cached (``$XDG_CACHE_HOME/napari-emsr/tiles.json``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "napari-emsr" / "tiles.json"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    from napari_emsr.device import cpu_name

    return f"{device.type}:{cpu_name()}:{torch.get_num_threads()} threads"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, entry: dict[str, Any]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache()
        data[key] = entry
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # a read-only home: measured again next time
        pass


def candidates(device: torch.device, window: int, plane: tuple[int, int]) -> list[int]:
    """Return the tiles tried: the table's tile halved, as is and doubled, on the window grid, none beyond need."""
    base, largest = default_tile(device), max(snap_up(max(plane), window), 2 * window)
    # one tile that covers the slice is the largest worth trying: larger ones only add padding
    return sorted({min(snap_up(max(t, 2 * window), window), largest) for t in (base // 2, base, 2 * base)})


def choose_tile(
    model: Any, device: torch.device, precision: str, plane: tuple[int, int], halo: int, *, key_model: str,
    blend: int | None = None, batch: int = 1,
) -> TileChoice:  # fmt: skip
    """Time the candidate tiles on ``device`` and return the fastest for a ``plane``-sized slice.

    ``model`` is the prepared network (on the device, eval); ``key_model`` identifies it in the
    cache (its digest). The cost of a candidate is the number of windows a slice needs (rounded up
    to whole batches) times the median seconds of one batch of windows.
    """
    from napari_emsr.predict.engine import Geometry, ModelRunner

    window, scale = model.config.window_size, model.config.scale
    key = "|".join(map(str, (_device_name(device), key_model, precision, plane[0], plane[1], halo, blend, batch)))
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and isinstance(cached.get("tile"), int):
        return TileChoice(tile=cached["tile"], seconds=cached.get("seconds", {}), cached=True)
    runner = ModelRunner(model, device, batch, precision)
    seconds: dict[str, float] = {}
    for tile in candidates(device, window, plane):
        mix = default_blend(tile, window) if blend is None else blend
        span = window_span(tile, halo, mix, window)
        tiles = np.random.default_rng(0).random((batch, span, span), dtype=np.float32)
        runner(tiles)  # warm-up: oneDNN / cuDNN build their kernels for this shape
        times = []
        for _ in range(REPEATS):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            runner(tiles)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        count = len(Geometry(tile=tile, halo=halo, blend=mix, window=window, scale=scale).grid(plane))
        seconds[str(tile)] = float(np.median(times)) * -(-count // batch)
    best = int(min(seconds, key=lambda t: seconds[t]))
    _write_cache(key, {"tile": best, "seconds": seconds})
    return TileChoice(tile=best, seconds=seconds, cached=False)
