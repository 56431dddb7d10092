"""Sample data contribution "EM pair (FlyEM FIB-SEM)": an LR stack and an HR crop that overlay.

The LR stack (16 x 173 x 173, 30 nm pixels) covers a 5.2 um field; the HR stack (16 x 240 x 240,
10 nm) a centred 2.4 um field inside it. Both are small OME-TIFFs shipped in ``napari_emsr/sample_data/``
(made by scripts/make_sample_data.py from the FlyEM validation slices; see CREDITS.md there), read
through the library's :mod:`napari_emsr.samples`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_emsr.samples import EM_PAIR_CREDIT, em_pair_file, em_pair_geometry

__all__ = ["em_pair"]


def em_pair() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Return the LR (30 nm) and HR (10 nm) layers of the sample, placed so that they overlay."""
    from napari_emsr.io import open_volume

    geometry = em_pair_geometry()
    layers = []
    for key, name in (("lr", "EM LR 30 nm"), ("hr", "EM HR 10 nm")):
        part = geometry[key]
        with em_pair_file(key) as path, open_volume(path) as volume:
            data = np.asarray(volume.data)
            sizes = volume.pixel_size_nm
        meta = {
            "name": name,
            "scale": sizes,
            "translate": tuple(part["translate_nm"]),
            "units": ("nm",) * data.ndim,
            "axis_labels": ("z", "y", "x"),
            "contrast_limits": (0, 255),
            "metadata": {"napari_emsr": {"sample": "EM pair (FlyEM FIB-SEM)", "credit": EM_PAIR_CREDIT}},
        }
        layers.append((data, meta, "image"))
    return layers
