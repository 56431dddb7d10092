"""What a model file stores besides its weights: intensity normalisation, pixel size, provenance."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Normalization", "ModelMetadata"]


@dataclass(frozen=True)
class Normalization:
    """How raw intensities map to the network's range, and back.

    ``mode="range"``: ``low`` and ``high`` are intensities (e.g. 0 and 255 for 8-bit EM) mapped to 0
    and 1. ``mode="percentile"``: ``low`` and ``high`` are percentiles of the input volume (e.g. 0.1
    and 99.9), resolved on the data at hand; use it for 16-bit data whose range varies per scan.
    """

    mode: str = "range"
    low: float = 0.0
    high: float = 255.0

    def __post_init__(self) -> None:
        if self.mode not in ("range", "percentile"):
            raise ValueError(f"normalization mode must be 'range' or 'percentile', got {self.mode!r}")
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"normalization {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not self.low < self.high:
            raise ValueError(f"normalization low ({self.low}) must be below high ({self.high})")
        if self.mode == "percentile" and not (0 <= self.low and self.high <= 100):
            raise ValueError("percentile normalization needs 0 <= low < high <= 100")

    def bounds(self, sample: np.ndarray | None = None) -> tuple[float, float]:
        """Return the intensities mapped to 0 and 1; percentile mode computes them on ``sample``."""
        if self.mode == "range":
            return self.low, self.high
        if sample is None:
            raise ValueError("percentile normalization needs a sample of the data to compute its bounds")
        low, high = np.percentile(np.asarray(sample, dtype=np.float64), [self.low, self.high])
        return float(low), float(max(high, low + 1e-6))

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain (JSON-ready) dict."""
        return dataclasses.asdict(self)


@dataclass
class ModelMetadata:
    """Everything a model file carries besides the weights and the network config.

    Attributes
    ----------
    trained : bool
        False for random weights: such a model is never presented as a trained one.
    input_pixel_size_nm : float or None
        The (y, x) pixel size of the low-resolution input the model was trained for; its output has
        ``input_pixel_size_nm / scale``. None when unknown.
    normalization : Normalization
        How raw intensities are mapped to the network's range and back.
    provenance : dict
        JSON-serialisable facts: training data and licence, strategy, steps, wall time, hardware,
        the command that made it, validation metrics.
    effective_radius_px : int or None
        Input pixels of context an output pixel really needs (measured when the model was saved by
        training, see ``napari_emsr.predict.halo``); the default tile halo. None: measured per run.
    valid_input_pixel_size_nm : (float, float) or None
        The range of input pixel sizes over which the model was measured to beat bicubic on held-out
        data (benchmarks/evaluate_zoo.py); the pixel-size warning uses it. None: not measured (the
        warning then allows 25 % around ``input_pixel_size_nm``).
    """

    name: str = ""
    description: str = ""
    trained: bool = False
    input_pixel_size_nm: float | None = None
    normalization: Normalization = field(default_factory=Normalization)
    provenance: dict[str, Any] = field(default_factory=dict)
    effective_radius_px: int | None = None
    valid_input_pixel_size_nm: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.normalization, Mapping):
            self.normalization = Normalization(**self.normalization)
        if self.input_pixel_size_nm is not None:
            size = self.input_pixel_size_nm
            if isinstance(size, bool) or not isinstance(size, (int, float)) or not (math.isfinite(size) and size > 0):
                raise ValueError(f"input_pixel_size_nm must be a positive number of nanometres, got {size!r}")
            self.input_pixel_size_nm = float(size)
        if not isinstance(self.provenance, Mapping):
            raise ValueError(f"provenance must be a mapping, got {type(self.provenance).__name__}")
        self.trained = bool(self.trained)
        valid = self.valid_input_pixel_size_nm
        if valid is not None:
            try:
                low, high = (float(v) for v in valid)
            except (TypeError, ValueError):
                raise ValueError(f"valid_input_pixel_size_nm must be two numbers (low, high), got {valid!r}") from None
            if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
                raise ValueError(f"valid_input_pixel_size_nm must satisfy 0 < low <= high, got {valid!r}")
            self.valid_input_pixel_size_nm = (low, high)
        radius = self.effective_radius_px
        if radius is not None and (isinstance(radius, bool) or not isinstance(radius, int) or radius < 0):
            raise ValueError(f"effective_radius_px must be a whole number >= 0 or None, got {radius!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelMetadata":
        """Build metadata from a mapping; unknown keys are a ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown metadata key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain (JSON-ready) dict."""
        out = dataclasses.asdict(self)
        out["normalization"] = self.normalization.to_dict()
        if out["valid_input_pixel_size_nm"] is not None:
            out["valid_input_pixel_size_nm"] = list(out["valid_input_pixel_size_nm"])
        return out

    def updated(self, **changes: Any) -> "ModelMetadata":
        """Return a copy with some fields changed (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})
