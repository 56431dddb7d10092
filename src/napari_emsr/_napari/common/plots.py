"""A matplotlib figure in a Qt widget, drawn in napari's theme, redrawn at most a few times a second.

matplotlib is imported when the first plot widget is made, not when napari loads the plugin.
Redraws are throttled: :meth:`PlotCanvas.request_draw` only marks the figure stale, and a timer
draws it at most every ``min_interval_ms``, and never sooner than ``DUTY`` times the last draw's
duration after it, so that drawing takes at most 1 / DUTY of the GUI thread's time however slow a
busy machine makes it: a stream of training steps costs the event loop a draw every second or
two, not one per step. The layout (``tight_layout``, which measures every text) is computed on the
first draw and after a resize only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

__all__ = ["PlotCanvas", "theme_colours", "DUTY"]

#: a draw is followed by at least DUTY - 1 times its duration without drawing
DUTY = 5


def theme_colours(viewer: Any = None) -> dict[str, str]:
    """Background, axes and text colours of the viewer's napari theme (dark if unknown)."""
    from napari.utils.theme import get_theme

    name = getattr(viewer, "theme", None) or "dark"
    try:
        theme = get_theme(name)
    except (KeyError, ValueError):
        theme = get_theme("dark")
    return {
        "background": theme.background.as_hex(),
        "face": theme.foreground.as_hex(),
        "text": theme.text.as_hex(),
        "grid": theme.secondary.as_hex(),
    }


class PlotCanvas(QWidget):
    """A figure (``self.figure``) in a Qt canvas; call :meth:`request_draw` after changing it."""

    def __init__(
        self, viewer: Any = None, *, height_px: int = 300, min_interval_ms: int = 400, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.colours = theme_colours(viewer)
        self.figure = Figure(figsize=(4, height_px / 100), dpi=100, facecolor=self.colours["background"])
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height_px)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.min_interval_ms = min_interval_ms
        self.draws = 0
        self.draw_seconds = 0.0  # how long the last draw took
        self._last_draw = 0.0
        self._layout_stale = True
        # wrapped on this one canvas instance (timing and re-layout), not on its class
        self.canvas.resizeEvent = self._resized(self.canvas.resizeEvent)  # type: ignore[method-assign]
        self.canvas.draw = self._timed(self.canvas.draw)  # type: ignore[method-assign]
        self._timer = QTimer(self, singleShot=True)  # type: ignore[call-arg]
        self._timer.timeout.connect(self.draw_now)

    def style_axes(self, ax: Any, title: str = "", *, xlabel: str = "", ylabel: str = "") -> None:
        """Give ``ax`` the theme's colours, small fonts and labels."""
        from matplotlib.ticker import MaxNLocator

        c = self.colours
        ax.set_facecolor(c["face"])
        for spine in ax.spines.values():
            spine.set_color(c["grid"])
        ax.tick_params(colors=c["text"], labelsize=7)
        ax.grid(True, color=c["grid"], linewidth=0.5, alpha=0.6)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # few ticks: drawing tick labels is most of a draw's cost
        ax.set_title(title, color=c["text"], fontsize=8)
        ax.set_xlabel(xlabel, color=c["text"], fontsize=7)
        ax.set_ylabel(ylabel, color=c["text"], fontsize=7)

    def legend(self, ax: Any, **kwargs: Any) -> None:
        """Return a small legend in the theme's colours (only if ``ax`` has labelled artists)."""
        if not ax.get_legend_handles_labels()[0]:
            return
        legend = ax.legend(fontsize=6, facecolor=self.colours["face"], edgecolor=self.colours["grid"], **kwargs)
        for text in legend.get_texts():
            text.set_color(self.colours["text"])

    def request_draw(self) -> None:
        """Draw soon: at once if the last draw is old enough, else when the interval has passed."""
        if self._timer.isActive():
            return
        since = (time.perf_counter() - self._last_draw) * 1000
        interval = max(self.min_interval_ms, DUTY * 1000 * self.draw_seconds)
        self._timer.start(int(max(0.0, interval - since)))

    def _timed(self, draw: Any) -> Any:
        def timed_draw(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            draw(*args, **kwargs)
            self.draw_seconds = time.perf_counter() - start
            self._last_draw = time.perf_counter()

        return timed_draw

    def _resized(self, handler: Any) -> Any:
        def resized(event: Any) -> None:
            self._layout_stale = True
            handler(event)

        return resized

    def draw_now(self) -> None:
        """Draw the figure now (the throttled path ends here); lay it out first if needed."""
        self._timer.stop()
        self.before_draw()
        if self._layout_stale:
            try:
                self.figure.tight_layout(pad=0.6)
                self._layout_stale = False
            except (ValueError, RuntimeError):  # a canvas too small to lay out: draw as it is
                pass
        self.canvas.draw_idle()
        self.draws += 1

    def before_draw(self) -> None:
        """Bring the artists up to date with the data just before a draw (a hook for subclasses)."""

    def save(self, path: str | Path, *, dpi: int = 150) -> Path:
        """Write the figure (PNG, SVG or PDF by the file's ending), drawn up to date."""
        self.before_draw()
        path = Path(path)
        self.figure.savefig(path, dpi=dpi, facecolor=self.figure.get_facecolor())
        return path
