"""Choosing the torch device, and recognising out-of-memory errors on it."""

from __future__ import annotations

import torch

from napari_emsr.errors import Hint, HintedValueError

__all__ = ["select_device", "is_out_of_memory", "release_memory", "default_tile", "default_batch"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``device`` to an available :class:`torch.device`.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None): CUDA if available, then Apple MPS, then the CPU. Otherwise a torch
        device string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.

    Raises
    ------
    ValueError
        If the device is not a valid device name, or is not available here; the message says what
        to do instead.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if resolved.type == "cuda":
        _check_cuda(resolved)
    elif resolved.type == "mps" and not _mps_available():
        raise HintedValueError(
            "device 'mps' was requested but Apple's Metal (MPS) backend is not available here (it needs "
            "an Apple-silicon Mac and a PyTorch build with MPS)",
            Hint("device", "cpu"),
            Hint("device", "auto"),
        )
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device type {resolved.type!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return resolved


def _check_cuda(device: torch.device) -> None:
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise HintedValueError(
            f"device {str(device)!r} was requested but no CUDA GPU is usable (PyTorch {torch.__version__} is "
            f"{build}); install a CUDA build of PyTorch (see https://pytorch.org/get-started/locally/) and "
            "check the NVIDIA driver with nvidia-smi",
            Hint("device", "cpu", "to run on the CPU instead"),
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(
            f"device {str(device)!r} does not exist: this machine has {count} CUDA device(s), 0..{count - 1}"
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator (or allocator) out-of-memory error."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_memory(device: torch.device) -> None:
    """Return cached blocks to the driver after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def default_tile(device: torch.device) -> int:
    """Default core size of a tile, in input pixels: 256 on the CPU, 1024 on an accelerator.

    On a CPU the network runs faster per pixel on smaller windows (its feature maps stay in cache):
    measured with the default model, 256-pixel tiles give 1.23x the end-to-end throughput of
    512-pixel ones on large slices despite their larger share of halo (benchmarks/README.md).
    """
    return 256 if device.type == "cpu" else 1024


def default_batch(device: torch.device) -> int:
    """Default number of tiles per forward pass: 1 on the CPU (nothing to gain), 4 on an accelerator."""
    return 1 if device.type == "cpu" else 4
