"""The Fine-tune panel's view of a fitted degradation: the noise-variance curve, real against simulated.

Residual variance of the LR against the noise-free model, per intensity bin, for the real LR and for
an LR simulated through the fitted model (:class:`napari_emsr.training.fit_degradation.GoodnessOfFit`);
where the two curves agree, the simulated inputs have the pair's noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_emsr._napari.common.plots import PlotCanvas

__all__ = ["NoiseCurvePlot"]


class NoiseCurvePlot(PlotCanvas):
    """Noise variance against intensity: the real LR's and the simulated LR's."""

    def __init__(self, viewer: Any = None, parent: Any = None) -> None:
        super().__init__(viewer, height_px=180, parent=parent)
        self.ax = self.figure.subplots()
        self.lines: dict[str, Any] = {}
        self.show_fit(None)

    def show_fit(self, fit: Any) -> None:
        """Draw the noise curves of a :class:`~napari_emsr.training.fit_degradation.FittedDegradation` (None: empty)."""
        ax = self.ax
        ax.clear()
        self.lines = {}
        self.style_axes(ax, "noise of the LR: real and simulated", xlabel="intensity (0..1)", ylabel="variance")
        goodness = getattr(fit, "goodness", None)
        if goodness is not None and goodness.noise_levels:
            x = np.asarray(goodness.noise_levels)
            self.lines["real"] = ax.plot(x, goodness.noise_var_real, "o-", color="#4fc3f7", markersize=3,
                                         linewidth=1.2, label="real LR")[0]  # fmt: skip
            self.lines["simulated"] = ax.plot(x, goodness.noise_var_simulated, "s--", color="#ffb74d", markersize=3,
                                              linewidth=1.2, label="simulated through the fit")[0]  # fmt: skip
            ax.set_ylim(0, 1.15 * max(max(goodness.noise_var_real), max(goodness.noise_var_simulated)))
            self.legend(ax, loc="upper left")
        self.draw_now()
