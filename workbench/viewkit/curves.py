"""Live metric curves: one line per metric key, points appended as they arrive.

`add_point` only records the point; `redraw` (call it from a timer, a few times a second)
touches the plot only when something changed, so a flood of metrics cannot stall the UI.
"""
from __future__ import annotations

from typing import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
STYLES = [Qt.SolidLine, Qt.DashLine, Qt.DotLine, Qt.DashDotLine]


class CurvesWidget(pg.PlotWidget):
    def __init__(self, parent=None, title: str = "", log_y: bool = False, x_label: str = "epoch"):
        super().__init__(parent, background="w")
        self.setTitle(title, color="#333", size="11pt")
        self.showGrid(x=True, y=True, alpha=0.25)
        for axis in ("left", "bottom"):  # grid lines at major ticks only: a fraction of the painting cost
            self.getAxis(axis).setStyle(maxTickLevel=0)
        self.setLabel("bottom", x_label)
        self.addLegend(offset=(-10, 10), labelTextColor="#333")
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.items: dict[str, pg.PlotDataItem] = {}
        self._pens: dict[str, object] = {}
        self._dirty = False
        self.log_y = False
        self.set_log_y(log_y)

    # -- data --------------------------------------------------------------------------
    def add_point(self, key: str, step: float, value: float) -> None:
        xs, ys = self.series.setdefault(key, ([], []))
        xs.append(step)
        ys.append(float("nan") if value is None else value)
        self._dirty = True

    def set_series(self, key: str, steps: Sequence[float], values: Sequence[float],
                   color: str | None = None, style: int = 0) -> None:
        """Replace a whole series; `color`/`style` (index into dash styles) pick its pen."""
        self.series[key] = (list(steps), [float("nan") if v is None else v for v in values])
        if color is not None:
            self._pens[key] = pg.mkPen(color, width=2, style=STYLES[style % len(STYLES)])
        self._dirty = True

    def clear_all(self) -> None:
        self.series.clear()
        self._pens.clear()
        for item in self.items.values():
            self.removeItem(item)
        self.items.clear()
        if self.plotItem.legend is not None:
            self.plotItem.legend.clear()
        self._dirty = False

    def set_log_y(self, on: bool) -> None:
        self.log_y = bool(on)
        self.setLogMode(y=self.log_y)
        self.setLabel("left", "log scale" if self.log_y else "")

    # -- drawing -----------------------------------------------------------------------
    def redraw(self) -> None:
        """Cheap to call often: only touches the plot when points arrived since last time."""
        if not self._dirty:
            return
        for key, (xs, ys) in self.series.items():
            item = self.items.get(key)
            if item is None:
                pen = self._pens.get(key) or pg.mkPen(COLORS[len(self.items) % len(COLORS)], width=2)
                # lines only: pyqtgraph's symbol painting crashed under PySide6 on frequent redraws
                item = self.items[key] = self.plot([], [], pen=pen, name=key)
                item.setDownsampling(auto=True, method="peak")
                item.setClipToView(True)
            item.setData(xs, ys)
        self._dirty = False
