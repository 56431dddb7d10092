"""Make the napari sample "EM pair (FlyEM FIB-SEM)" shipped in src/napari_emsr/sample_data/.

From 16 consecutive slices of the held-out FlyEM validation stack (520 x 520 uint8 PNG, 10 nm
isotropic; CC BY 3.0, FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples):

- LR: the 519 x 519 field degraded to 30 nm pixels by ``napari_emsr.training.degrade.em_like``
  (beam blur, x3 area averaging, shot, scan-line and read noise; seed 0): 173 x 173 pixels.
- HR: a centred 240 x 240 sub-field of the original at 10 nm.

LR pixel i integrates original pixels 3i..3i+2, so its centre lies on original pixel 3i + 1. With
the LR at translate 0, original pixel k lies at 10 k - 10 nm, and the HR crop starting at pixel K
gets translate 10 K - 10 nm: both overlay in napari's world coordinates, as does the x3 result of
the Super-resolve panel (translate -10 nm). ``em_pair.json`` records this geometry.

Usage: ``.venv/bin/python scripts/make_sample_data.py [--data DIR] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_emsr.io import open_volume, open_writer
from napari_emsr.training.degrade import em_like

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "flyem-medulla-fibsem" / "validation_sample"
OUT = ROOT / "src" / "napari_emsr" / "sample_data"

FIRST, SLICES = 92, 16  # slices iso.03582 .. iso.03597 of the 200 stored
SCALE, PIXEL_NM = 3, 10.0
FIELD = 519  # the largest multiple of 3 that fits in 520
HR_SIZE = 240
HR_START = (FIELD - HR_SIZE) // 2 // SCALE * SCALE  # 138: centred, on an LR pixel boundary
CREDIT = "FlyEM project, Janelia Research Campus (HHMI), neuroproof_examples, CC BY 3.0"


def degrade(stack: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 (z, 3h, 3w) -> uint8 (z, h, w) through the fixed EM-like acquisition model."""
    hr = torch.from_numpy(stack.astype(np.float32) / 255.0)[:, None]
    lr = em_like(hr, SCALE, torch.Generator().manual_seed(seed))
    return (lr[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def write(path: Path, stack: np.ndarray, pixel_nm: tuple[float, float, float]) -> None:
    writer = open_writer(path, shape=stack.shape, dtype=stack.dtype, pixel_size_nm=pixel_nm, overwrite=True)
    writer.open()
    for z, plane in enumerate(stack):
        writer.write(z, plane)
    writer.commit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the validation_sample folder of PNG slices")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the sample files")
    args = parser.parse_args(argv)

    files = sorted(p.name for p in args.data.glob("*.png"))[FIRST : FIRST + SLICES]
    with open_volume(args.data) as volume:
        stack = np.asarray(volume.data[FIRST : FIRST + SLICES, :FIELD, :FIELD])
    lr = degrade(stack)
    hr = stack[:, HR_START : HR_START + HR_SIZE, HR_START : HR_START + HR_SIZE]
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "em_pair_lr.ome.tif", lr, (PIXEL_NM, PIXEL_NM * SCALE, PIXEL_NM * SCALE))
    write(args.out / "em_pair_hr.ome.tif", np.ascontiguousarray(hr), (PIXEL_NM, PIXEL_NM, PIXEL_NM))
    offset = PIXEL_NM * (HR_START - (SCALE - 1) // 2)
    geometry = {
        "lr": {"file": "em_pair_lr.ome.tif", "translate_nm": [0.0, 0.0, 0.0]},
        "hr": {"file": "em_pair_hr.ome.tif", "translate_nm": [0.0, offset, offset]},
        "scale": SCALE,
        "source": {"data": "flyem-medulla-fibsem/validation_sample", "slices": files, "credit": CREDIT},
        "modified": (
            f"cropped to {FIELD} x {FIELD}; LR degraded with napari_emsr.training.degrade.em_like (x{SCALE}, "
            f"seed 0); HR a centred {HR_SIZE} x {HR_SIZE} crop starting at pixel {HR_START}"
        ),
    }
    (args.out / "em_pair.json").write_text(json.dumps(geometry, indent=2) + "\n")
    print(f"LR {lr.shape} at {PIXEL_NM * SCALE:g} nm, HR {hr.shape} at {PIXEL_NM:g} nm -> {args.out}")


if __name__ == "__main__":
    main()
