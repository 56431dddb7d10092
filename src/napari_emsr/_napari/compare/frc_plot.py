"""FRC curves of the "Compare" panel: one per method, the 1/7 and half-bit thresholds, the crossings.

As ``emsr evaluate --plot`` draws them: the curve the resolution is read from (Hann window by
default) solid, the mean-FRC curve (no window) faint when the windows differ, a dotted line at each
method's resolution, and the thresholds (half-bit for the pooled rings of the first curve).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_emsr._napari.common.plots import PlotCanvas

__all__ = ["FRCPlot"]

_COLOURS = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#90a4ae")


def _curves(result: Any) -> tuple[Any, Any]:
    """Return (the resolution curve, the mean-FRC curve or None) of a StackEvaluation or ReferenceFreeResolution."""
    if hasattr(result, "resolution_curve"):
        other = None if result.curve is result.resolution_curve else result.curve
        return result.resolution_curve, other
    return result.curve, None


class FRCPlot(PlotCanvas):
    """FRC curves with thresholds; x in 1/nm when the pixel size is known, else cycles/pixel."""

    def __init__(self, viewer: Any = None, parent: Any = None) -> None:
        super().__init__(viewer, height_px=240, parent=parent)
        self.ax = self.figure.subplots()
        self.lines: dict[str, Any] = {}
        self.show_scores(None)

    def show_scores(self, scores: Any, *, title: str = "") -> None:
        """Draw the curves of a :class:`~napari_emsr.metrics.Scores` (None: empty axes)."""
        ax = self.ax
        ax.clear()
        self.lines = {}
        self.style_axes(ax, title or "Fourier ring correlation", xlabel="spatial frequency", ylabel="FRC")
        if scores is None or not scores.results:
            self.draw_now()
            return
        first, _ = _curves(next(iter(scores.results.values())))
        per_nm = first.pixel_size_nm is not None
        x = first.frequency_per_nm if per_nm else first.frequency
        for colour, (label, result) in zip(_COLOURS * 4, scores.results.items(), strict=False):
            curve, faint = _curves(result)
            text = f"{label}: {result.resolution.describe().split(' (')[0]}"
            self.lines[label] = ax.plot(x, curve.frc, color=colour, linewidth=1.2, label=text)[0]
            if faint is not None:
                ax.plot(x, faint.frc, color=colour, linewidth=0.8, alpha=0.4)
            if result.resolution.reached:
                ax.axvline(result.resolution.frequency / (first.pixel_size_nm if per_nm else 1.0), color=colour,
                           linestyle=":", linewidth=1)  # fmt: skip
        self._thresholds(x, first)
        ax.set_xlabel("spatial frequency (1/nm)" if per_nm else "spatial frequency (cycles/pixel)")
        low = min(float(np.min(_curves(r)[0].frc)) for r in scores.results.values())
        ax.set_ylim(min(-0.1, low), 1.02)
        ax.set_xlim(0, float(x[-1]))
        self.legend(ax, loc="upper right")
        self.draw_now()

    def _thresholds(self, x: np.ndarray, curve: Any) -> None:
        from napari_emsr.metrics import frc_threshold

        text = self.colours["text"]
        self.lines["1/7"] = self.ax.plot(x, frc_threshold(curve, "1/7"), "--", color=text, linewidth=0.8,
                                         label="1/7 threshold")[0]  # fmt: skip
        self.lines["half-bit"] = self.ax.plot(x, frc_threshold(curve, "half-bit"), "-.", color=text, linewidth=0.8,
                                              label="half-bit threshold")[0]  # fmt: skip
        self.ax.axhline(0, color=self.colours["grid"], linewidth=0.5)
