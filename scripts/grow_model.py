"""Grow a trained EMSR model by basic blocks that start as the identity, as an initialisation for training.

    python scripts/grow_model.py em-x3 grown.safetensors --blocks 3

The blocks of MODEL and everything around them are copied; each added block (appended after the last)
starts from random weights with its output convolution zeroed, so the block's residual connection
makes it the identity and the grown network computes exactly MODEL's output (checked on a random
input before the file is written). Train it with ``emsr train --base OUT ...``. The file keeps MODEL's
metadata (intensity mapping, pixel sizes), marked untrained: it is an initialisation, not a model of its own.
Used for the capacity test in benchmarks/results/flyem_gap.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from napari_emsr import load_model
from napari_emsr.model_io import resolve_model_path, save_model
from napari_emsr.training.trainer import transfer_to_scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a zoo name or a model file")
    parser.add_argument("out", help="the grown model file (not overwritten)")
    parser.add_argument("--blocks", type=int, required=True, help="number of basic blocks of the grown network")
    parser.add_argument("--seed", type=int, default=0, help="seed of the added blocks' random weights")
    args = parser.parse_args()
    if Path(args.out).exists():
        raise SystemExit(f"{args.out} exists: choose another name or remove it first")
    source = load_model(resolve_model_path(args.model))
    have = source.config.num_blocks
    if args.blocks <= have:
        raise SystemExit(f"{args.model} has {have} blocks already: ask for more than {have}")
    torch.manual_seed(args.seed)
    # the same architecture with more blocks: every weight of the source copied, the new blocks random
    grown = transfer_to_scale(source, source.config.scale, num_blocks=args.blocks)
    for block in grown.blocks[have:]:
        torch.nn.init.zeros_(block.conv.weight)
        torch.nn.init.zeros_(block.conv.bias)
    probe = torch.rand(1, source.config.in_channels, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = float((grown(probe) - source(probe)).abs().max())
    if diff > 1e-6:
        raise SystemExit(f"the grown network differs from {args.model} by {diff:g}: not written")
    save_model(grown, args.out, name=f"{source.metadata.name or args.model}-grown{args.blocks}")
    print(f"{args.out}: {have} -> {args.blocks} blocks, output identical to {args.model} (max difference {diff:g})")


if __name__ == "__main__":
    main()
