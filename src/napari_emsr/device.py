"""Choosing the torch device and the arithmetic precision, and recognising out-of-memory errors."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from napari_emsr.errors import Hint, HintedValueError

__all__ = [
    "select_device",
    "is_out_of_memory",
    "release_memory",
    "default_tile",
    "default_batch",
    "PRECISIONS",
    "cpu_has_amx_bf16",
    "resolve_precision",
]

#: the precisions a run can ask for ("auto": see :func:`resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> list[str]:
    """Return the lines of ``/proc/cpuinfo`` (Linux), read once; empty where the file is absent."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return []


def cpu_name() -> str:
    """Return the CPU's model name (from ``/proc/cpuinfo``, else :func:`platform.processor`)."""
    import platform

    found = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), None)
    return found or platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices on AMX tiles (Intel Sapphire Rapids and later).

    Read from the ``amx_bf16`` flag of ``/proc/cpuinfo`` (Linux); False where that file is absent.
    oneDNN then runs bf16 convolutions and matrix products on AMX: measured on 2 cores of such a
    machine, the default model runs about 2x faster under bf16 autocast than in fp32
    (benchmarks/precision.py).
    """
    return any(line.startswith("flags") and " amx_bf16 " in f"{line} " for line in _cpuinfo())


def resolve_precision(precision: str, device: torch.device, *, training: bool = False) -> tuple[str, str]:
    """Return (the precision a run on ``device`` uses, why), for ``precision`` in :data:`PRECISIONS`.

    ``"auto"`` takes bf16 on CUDA GPUs that support it (Ampere and later) and on CPUs with AMX-BF16,
    fp32 elsewhere (bf16 without AMX is emulated and slower than fp32). bf16 autocast changes the
    default model's output by about 55 dB PSNR against fp32 (0.001 dB against the reference,
    well inside the 0.05 dB allowed; benchmarks/precision.py). ``"fp16"`` is for CUDA only.
    ``training`` picks the figures the reason quotes for AMX: those of training (about 1.6x the
    steps per second of fp32, the same held-out quality at equal steps; docs/training.md) instead of
    those of prediction.

    Raises
    ------
    ValueError
        For an unknown precision, fp16 off CUDA, or bf16 on a GPU without it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cuda = device.type == "cuda"
    bf16_gpu = cuda and torch.cuda.is_bf16_supported()
    if precision == "auto":
        if bf16_gpu:
            return "bf16", "auto: this GPU has bf16"
        if device.type == "cpu" and cpu_has_amx_bf16():
            gain = "about 1.6x the steps of fp32, same quality" if training else "about 2x fp32, output within 0.001 dB"
            return "bf16", f"auto: this CPU has AMX-BF16 ({gain})"
        why = "the GPU has no bf16" if cuda else ("no AMX-BF16 on this CPU" if device.type == "cpu" else device.type)
        return "fp32", f"auto: {why}"
    if precision == "fp16" and not cuda:
        raise ValueError(f"fp16 runs on CUDA GPUs only, not on {device.type}: use --precision bf16 or fp32")
    if precision == "bf16" and cuda and not bf16_gpu:
        raise ValueError(f"{device} has no bf16 (it needs an Ampere or later GPU): use --precision fp16 or fp32")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_amx_bf16():
        return "bf16", ("asked (this CPU has no AMX-BF16: bf16 is emulated here, often several times slower than "
                        "fp32; precision fp32 or auto avoids it)")  # fmt: skip
    return precision, "asked"



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


def default_tile(device: torch.device, precision: str = "fp32") -> int:
    """Default core size of a tile, in input pixels: on the CPU 256 in fp32 and 512 in bf16; 1024 on an accelerator.

    In fp32 the network runs faster per pixel on smaller windows on a CPU (its feature maps stay in
    cache), which pays for their larger share of halo: 256 and 512 are level on a large slice (512
    at 0.97x). In bf16 on AMX the kernels do more per byte loaded, and 512 wins: 1.19x the output
    MP/s of 256 on a 1557 x 1557 slice, 1.45x on 519 x 519 slices (``benchmarks/default_tile.py``,
    results/default_tile.json). ``tile="auto"`` times candidates on the user's own slice.
    """
    if device.type != "cpu":
        return 1024
    return 512 if precision == "bf16" else 256


def default_batch(device: torch.device) -> int:
    """Default number of tiles per forward pass: 1 on the CPU (nothing to gain), 4 on an accelerator."""
    return 1 if device.type == "cpu" else 4
