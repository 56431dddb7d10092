"""``emsr export-bioimageio``: write a model file as a bioimage.io model package (spec 0.5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_emsr.cli import CLIError

_DESCRIPTION = """\
Write MODEL (a napari-emsr .safetensors file) as a bioimage.io model package OUT.zip (spec 0.5),
built and validated with bioimageio.spec (optional extra: pip install 'napari-emsr[bioimageio]').

The package holds the architecture (napari_emsr.build_emsr with the model's config) and its
weights as a pytorch_state_dict of plain tensors, MODEL itself as an attachment (what
napari_emsr.load_model reads: no pickle), a 2D input whose pixel size is the model's and an output
s times larger, test tensors computed on a real crop, a cover (LR | SR), a README, the EMSR paper's
citation and the licence. `emsr predict --model OUT.zip` and load_model("OUT.zip") accept it.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``emsr export-bioimageio`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "export-bioimageio",
        help="write a model as a bioimage.io model package (.zip)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a napari-emsr .safetensors model file")
    p.add_argument("output", metavar="OUT.zip", help="the package to write")
    p.add_argument(
        "--sample", metavar="IMAGE",
        help="a real LR image (2D, or the middle slice of a stack; >= 128 x 128) for the test tensors and the "
        "cover (default: napari-emsr's FlyEM sample, 30 nm)",
    )  # fmt: skip
    p.add_argument("--sample-credit", metavar="TEXT", help="where --sample comes from and its licence")
    p.add_argument("--name", help="the package's name (letters, digits, spaces, _+-())")
    p.add_argument("--author", action="append", metavar="NAME", help="an author (repeat for several)")
    p.add_argument("--licence", default="BSD-3-Clause", metavar="SPDX", help="SPDX licence id (default BSD-3-Clause)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.zip")


def run(args: argparse.Namespace) -> int:
    """Run ``emsr export-bioimageio`` with the parsed ``args``; return the exit status."""
    import numpy as np

    from napari_emsr.bmz.export import export_bioimageio

    output = Path(args.output)  # an existing one: the library's OutputExistsError, phrased as --overwrite
    sample = None
    if args.sample is not None:
        from napari_emsr.io import open_volume

        with open_volume(args.sample) as volume:
            data = volume.data[volume.shape[0] // 2] if volume.ndim == 3 else volume.data
            sample = np.asarray(data)
    try:
        path = export_bioimageio(
            args.model, output, sample=sample, sample_credit=args.sample_credit, name=args.name,
            authors=args.author or ("napari-emsr developers",), licence=args.licence, overwrite=args.overwrite,
        )  # fmt: skip
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    import bioimageio.spec

    version = bioimageio.spec.__version__
    print(f"emsr export-bioimageio: {path} (bioimage.io model, validated with bioimageio.spec {version})")
    return 0
