"""Write the weight-space blend a * A + (1 - a) * B of two models of one architecture (e.g. a fine-tune and its base).

    python scripts/interpolate_models.py em-x3 flyem-fibsem-x3 --alpha 0.25 0.5 0.75 --out-dir /tmp/blend

Writes ``blend-a{alpha}.safetensors`` per alpha (metadata of A, provenance saying what was blended).
Used to ask whether a blend of the zoo's generalist ``em-x3`` and the first default (the FlyEM specialist
it was trained from) keeps FlyEM's quality and the other modalities' at once; score the files with
``benchmarks/evaluate_zoo.py FILE=LABEL ... --acquisition em-like``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from napari_emsr import load_model, save_model
from napari_emsr.model_io import resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="model A (a zoo name or a file)")
    parser.add_argument("b", help="model B, same architecture")
    parser.add_argument("--alpha", type=float, nargs="+", required=True, help="weights of A, each in [0, 1]")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    a, b = load_model(resolve_model_path(args.a)), load_model(resolve_model_path(args.b))
    if a.config != b.config:
        raise SystemExit(f"{args.a} and {args.b} are different networks ({a.config} vs {b.config}): no blend")
    sa, sb = a.state_dict(), b.state_dict()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for alpha in args.alpha:
        if not 0 <= alpha <= 1:
            raise SystemExit(f"--alpha must be in [0, 1], got {alpha}")
        blend = {k: (alpha * v.float() + (1 - alpha) * sb[k].float()).to(v.dtype) if v.is_floating_point() else v
                 for k, v in sa.items()}  # fmt: skip
        model = copy.deepcopy(a)
        model.load_state_dict(blend)
        prov = {**model.metadata.provenance, "blend": {"a": args.a, "b": args.b, "alpha": alpha}}
        out = save_model(model, args.out_dir / f"blend-a{alpha:g}.safetensors", overwrite=True, provenance=prov)
        print(out)


if __name__ == "__main__":
    main()
