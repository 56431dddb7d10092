"""Live plots of a training run: each loss term per step, validation scores of the model and of bicubic.

Four small axes: the loss terms of eq. 16 (log scale), and the validation PSNR, SSIM and mean FRC of
the network (solid) against bicubic up-sampling of the same LR crops (dashed), as the trainer's
events arrive (their payloads: :class:`~napari_emsr.training.StepStats` and
:class:`~napari_emsr.training.Validation`). Data are kept in lists; the lines are updated
from them just before a (throttled) draw, thinned to at most ``MAX_POINTS`` points each.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_emsr._napari.common.plots import PlotCanvas

__all__ = ["TrainingPlots", "LOSS_TERMS", "SCORES"]

#: loss terms of eq. 16 as the trainer names them -> legend text
LOSS_TERMS = {
    "total": "total",
    "ref": "l(f(y), x)",
    "noisier_ref": "l(f(y'), x)",
    "consistency": "l(f(y), f(y'))",
}
#: validation scores -> axis title
SCORES = {"psnr": "validation PSNR (dB)", "ssim": "validation SSIM", "frc_mean": "validation mean FRC"}
MAX_POINTS = 2000


def _thin(steps: list[int], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_POINTS points, evenly spaced in the list (the last one always kept)."""
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(x) > MAX_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
        x, y = x[keep], y[keep]
    return x, y


class TrainingPlots(PlotCanvas):
    """Loss curves and validation scores of one training run (a resumed run continues them)."""

    def __init__(self, viewer: Any = None, parent: Any = None) -> None:
        super().__init__(viewer, height_px=300, min_interval_ms=1000, parent=parent)
        from matplotlib.ticker import NullLocator

        axes = self.figure.subplots(2, 2)
        self.loss_ax, psnr_ax, ssim_ax, frc_ax = axes.ravel()
        self.score_axes = {"psnr": psnr_ax, "ssim": ssim_ax, "frc_mean": frc_ax}
        self.style_axes(self.loss_ax, "training loss", xlabel="step")
        self.loss_ax.set_yscale("log")
        self.loss_ax.yaxis.set_minor_locator(NullLocator())
        self.loss_lines = {
            key: self.loss_ax.plot([], [], linewidth=0.8, label=text)[0] for key, text in LOSS_TERMS.items()
        }
        self.score_lines: dict[str, dict[str, Any]] = {}
        for key, ax in self.score_axes.items():
            self.style_axes(ax, SCORES[key], xlabel="step")
            model = ax.plot([], [], "o-", markersize=2.5, linewidth=1, color="#4fc3f7", label="model")[0]
            bicubic = ax.plot([], [], "--", linewidth=1, color="#ffb74d", label="bicubic")[0]
            self.score_lines[key] = {"model": model, "bicubic": bicubic}
        self.legend(self.loss_ax, loc="upper right")
        self.legend(psnr_ax, loc="lower right")
        self.clear()

    def clear(self) -> None:
        """Forget all data (a new run)."""
        self.steps: list[int] = []
        self.losses: dict[str, list[float]] = {key: [] for key in LOSS_TERMS}
        self.val_steps: list[int] = []
        self.scores: dict[str, dict[str, list[float]]] = {
            key: {"model": [], "bicubic": []} for key in SCORES
        }
        self.request_draw()

    def keep_until(self, step: int) -> None:
        """Drop data after ``step`` (a run resumed from an earlier checkpoint)."""
        n = int(np.searchsorted(self.steps, step, side="right"))
        self.steps = self.steps[:n]
        self.losses = {key: values[:n] for key, values in self.losses.items()}
        m = int(np.searchsorted(self.val_steps, step, side="right"))
        self.val_steps = self.val_steps[:m]
        for per_key in self.scores.values():
            for name in per_key:
                per_key[name] = per_key[name][:m]

    def add(self, event: Any) -> None:
        """Take one training event ("step" adds losses, "validation" adds scores)."""
        if event.kind == "step" and event.payload.losses:
            self.steps.append(event.done)
            for key, values in self.losses.items():
                values.append(float(event.payload.losses.get(key, np.nan)))
        elif event.kind == "validation" and event.payload.scores:
            scores = event.payload.scores
            if self.val_steps and self.val_steps[-1] == event.payload.step:
                return  # the same validation seen again (the end of a run that stopped on it)
            self.val_steps.append(event.payload.step)
            for key in SCORES:
                self.scores[key]["model"].append(float(scores[key]))
                self.scores[key]["bicubic"].append(float(scores["bicubic"][key]))
        else:
            return
        self.request_draw()

    def before_draw(self) -> None:
        for key, line in self.loss_lines.items():
            values = self.losses[key]
            shown = bool(values) and not np.all(np.isnan(values))
            line.set_data(*_thin(self.steps, values) if shown else ([], []))
        for key, lines in self.score_lines.items():
            for name, line in lines.items():
                line.set_data(self.val_steps, self.scores[key][name])
        for ax in (self.loss_ax, *self.score_axes.values()):
            ax.relim()
            ax.autoscale_view()
