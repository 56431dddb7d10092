"""The sample data shipped with napari-emsr: a small FlyEM FIB-SEM pair, reachable without napari.

``EM pair (FlyEM FIB-SEM)``: an LR stack (16 x 173 x 173, 30 nm pixels) over a 5.2 um field and an HR
stack (16 x 240 x 240, 10 nm) over a centred 2.4 um field inside it, both small OME-TIFFs in
``napari_emsr/sample_data/`` (made by scripts/make_sample_data.py from FlyEM validation slices;
see CREDITS.md there). The napari sample contribution, the bioimage.io export's test input and the
tests read them through this module.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

__all__ = ["SAMPLE_FOLDER", "EM_PAIR_CREDIT", "em_pair_geometry", "em_pair_file"]

#: the folder (a package resource) holding the sample files
SAMPLE_FOLDER = resources.files("napari_emsr") / "sample_data"

#: the credit line the sample's data need wherever they are shown or redistributed
EM_PAIR_CREDIT = (
    "FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples, CC BY 3.0 (modified: cropped, degraded)"
)


def em_pair_geometry() -> dict[str, Any]:
    """Return the sample pair's geometry: for ``"lr"`` and ``"hr"``, the file name and its translation in nm."""
    return json.loads((SAMPLE_FOLDER / "em_pair.json").read_text())


@contextmanager
def em_pair_file(which: str) -> Iterator[Path]:
    """Give the path of the sample pair's ``"lr"`` or ``"hr"`` OME-TIFF for the duration of a ``with`` block."""
    geometry = em_pair_geometry()
    if which not in geometry:
        raise ValueError(f"the EM pair sample has 'lr' and 'hr' files, not {which!r}")
    with resources.as_file(SAMPLE_FOLDER / geometry[which]["file"]) as path:
        yield Path(path)
