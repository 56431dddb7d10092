"""Input checks shared by the metrics: one place for the messages a user sees."""

from __future__ import annotations

import numpy as np

__all__ = ["as_image", "as_pair", "dtype_data_range"]


def as_image(image, name: str, *, ndims: tuple[int, ...] = (2,)) -> np.ndarray:
    """``image`` as a float64 array, after checking its dimensions, size and values.

    Raises ``ValueError`` naming ``name`` for complex or non-numeric data, a wrong number of
    dimensions, an empty array, or NaN/inf values.
    """
    array = np.asarray(image)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be a numeric image, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise ValueError(f"{name} must be real-valued, got dtype {array.dtype}")
    if array.ndim not in ndims:
        wanted = " or ".join(f"{n}D" for n in ndims)
        hint = "; pass one slice at a time (evaluate_stack does this for a stack)" if array.ndim > max(ndims) else ""
        raise ValueError(f"{name} must be a {wanted} image, got shape {array.shape}{hint}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); replace or mask them first")
    return array


def as_pair(a, b, names: tuple[str, str] = ("a", "b"), *, ndims: tuple[int, ...] = (2,)):
    """Two images as float64 arrays of the same shape (see :func:`as_image`)."""
    x = as_image(a, names[0], ndims=ndims)
    y = as_image(b, names[1], ndims=ndims)
    if x.shape != y.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {x.shape} and {y.shape}; "
            "crop or resample one of them first"
        )
    return x, y


def dtype_data_range(dtype) -> float | None:
    """Return the intensity range implied by an integer dtype (uint8: 255, uint16: 65535); ``None`` for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 1.0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.max) - float(info.min)
    return None
