"""How late the Qt event loop runs a timer: a measure of how responsive the viewer stays.

A precise ``QTimer`` fires every ``interval_ms``; each tick records how much longer than that it
waited since the previous one. While the event loop is free the lateness is ~0; whatever blocks the
GUI thread (drawing, a slow slot, the GIL held by a worker thread) shows up as lateness. Used by
the widget tests and by ``benchmarks/gui_latency.py``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer

__all__ = ["EventLoopLatency"]


class EventLoopLatency(QObject):
    """Record the lateness of a timer tick every ``interval_ms`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.lateness_ms: list[float] = []
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.lateness_ms = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness_ms.append(max(0.0, (now - self._last) * 1000.0 - self.interval_ms))
        self._last = now

    def summary(self) -> dict[str, Any]:
        """Ticks, and the median, 95th percentile and maximum lateness in ms."""
        values = np.asarray(self.lateness_ms, dtype=float)
        if values.size == 0:
            return {"ticks": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
        return {
            "ticks": int(values.size),
            "median_ms": float(np.median(values)),
            "p95_ms": float(np.percentile(values, 95)),
            "max_ms": float(values.max()),
        }
