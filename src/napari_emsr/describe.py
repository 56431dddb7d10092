"""Describe a network or a model file: architecture, size, counted FLOPs, provenance."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from napari_emsr.config import EMSRConfig
from napari_emsr.errors import Hint, HintedValueError
from napari_emsr.model.emsr import EMSR, build_emsr, receptive_radius

__all__ = ["count_flops", "describe_model", "format_description"]


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # torch's counter has formulas for the CUDA attention kernels only; the CPU one does the same work.
    return sdpa_flop_count(query, key, value)


_EXTRA_FORMULAS = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _EXTRA_FORMULAS[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flops


def count_flops(model: EMSR, size: int = 64) -> dict[str, float]:
    """Count the FLOPs of one forward pass on a ``size`` x ``size`` input with torch's flop counter.

    A multiply-add counts as 2 FLOPs (convolutions, linear layers and attention matmuls);
    element-wise work (activations, normalisation, softmax) is not counted. ``size`` must be a
    multiple of the window so that no padding inflates the count.

    Returns ``{"total": ..., "per_input_pixel": ..., "per_output_pixel": ..., "by_operator": {...}}``.
    """
    config = model.config
    if size % config.window_size:
        raise ValueError(f"size must be a multiple of the window size {config.window_size}, got {size}")
    param = next(model.parameters())
    x = torch.zeros(1, config.in_channels, size, size, dtype=param.dtype, device=param.device)
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    with counter, torch.inference_mode():
        model(x)
    total = counter.get_total_flops()
    by_op = {str(op).replace("aten.", ""): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    out_pixels = (size * config.scale) ** 2
    flops: dict[str, Any] = {
        "total": float(total),
        "per_input_pixel": total / size**2,
        "per_output_pixel": total / out_pixels,
        "by_operator": by_op,
    }
    return flops


def describe_model(
    model: EMSR | str | os.PathLike | None = None, *, preset: str = "paper", scale: int | None = None
) -> dict[str, Any]:
    """Return a JSON-ready description of a model file, a network, or (with no model) a preset.

    Keys: ``source``, ``trained``, ``preset``, ``config``, ``scale``, ``parameters``,
    ``flops_per_output_pixel``, ``flops_per_input_pixel``, ``receptive_radius_px``,
    ``input_pixel_size_nm``, ``output_pixel_size_nm``, ``normalization``, ``provenance``.
    """
    if model is None:
        net = build_emsr(preset, **({"scale": scale} if scale is not None else {}))
        source = f"preset '{preset}' (architecture only: random weights, not a trained model)"
    elif isinstance(model, EMSR):
        net, source = model, "in-memory network"
    else:
        from napari_emsr.model_io import load_model

        net, source = load_model(model), str(model)
    if scale is not None and scale != net.config.scale:
        raise HintedValueError(
            f"{source} is a x{net.config.scale} model; scale {scale} does not apply to it",
            Hint("scale", net.config.scale, "or leave it out"),
        )
    config: EMSRConfig = net.config
    flops = count_flops(net)
    meta = net.metadata
    out_px = meta.input_pixel_size_nm / config.scale if meta.input_pixel_size_nm else None
    return {
        "source": source,
        "trained": meta.trained,
        "name": meta.name,
        "description": meta.description,
        "preset": config.preset_name,
        "config": config.to_dict(),
        "scale": config.scale,
        "parameters": sum(p.numel() for p in net.parameters()),
        "flops_per_output_pixel": flops["per_output_pixel"],
        "flops_per_input_pixel": flops["per_input_pixel"],
        "flops_by_operator": flops["by_operator"],
        "receptive_radius_px": receptive_radius(config),
        "input_pixel_size_nm": meta.input_pixel_size_nm,
        "output_pixel_size_nm": out_px,
        "normalization": meta.normalization.to_dict(),
        "provenance": meta.provenance,
    }


_LABELS = {
    "scale": "scale s",
    "channels": "channels C",
    "num_blocks": "basic blocks k",
    "num_res_blocks": "residual blocks m",
    "num_path_blocks": "path residual blocks n",
    "wavelet_scales": "wavelet scales",
    "num_heads": "attention heads h",
    "window_size": "window M",
    "mlp_ratio": "MLP ratio r",
    "in_channels": "input channels",
    "out_channels": "output channels",
}


def format_description(info: dict[str, Any]) -> str:
    """Human-readable text for :func:`describe_model`'s result."""
    status = "trained" if info["trained"] else "UNTRAINED (random weights: do not use for results)"
    lines = [
        f"model:        {info['source']}",
        f"status:       {status}",
    ]
    if info.get("name"):
        lines.append(f"name:         {info['name']}")
    if info.get("description"):
        lines.append(f"description:  {info['description']}")
    preset = info["preset"] or "custom"
    lines += [
        f"architecture: EMSR, preset {preset}, x{info['scale']}",
        *(f"  {_LABELS.get(k, k):<24}{v}" for k, v in info["config"].items()),
        f"parameters:   {info['parameters']:,} ({info['parameters'] / 1e6:.2f} M)",
        f"FLOPs:        {info['flops_per_output_pixel'] / 1e3:,.1f} k per output pixel "
        f"({info['flops_per_input_pixel'] / 1e6:,.2f} M per input pixel; counted by torch.utils.flop_counter)",
        f"receptive radius: {info['receptive_radius_px']} input pixels",
    ]
    if info["input_pixel_size_nm"]:
        lines.append(
            f"pixel size:   trained for {info['input_pixel_size_nm']:g} nm input -> "
            f"{info['output_pixel_size_nm']:g} nm output"
        )
    else:
        lines.append("pixel size:   unknown (no training pixel size recorded)")
    norm = info["normalization"]
    lines.append(f"intensities:  {norm['mode']} {norm['low']:g} .. {norm['high']:g} -> 0 .. 1")
    if info["provenance"]:
        lines.append("provenance:")
        for key, value in info["provenance"].items():
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)
