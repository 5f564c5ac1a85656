"""Live metric curves: one line per metric key, appended as points arrive."""
from __future__ import annotations

import pyqtgraph as pg

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


class CurvesWidget(pg.PlotWidget):
    def __init__(self, parent=None, title: str = "", log_y: bool = False):
        super().__init__(parent, background="w")
        self.setTitle(title, color="#333")
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLabel("bottom", "epoch")
        self.setLogMode(y=log_y)
        self.addLegend(offset=(-10, 10))
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self._items: dict[str, pg.PlotDataItem] = {}
        self._dirty = False

    def add_point(self, key: str, step: float, value: float) -> None:
        xs, ys = self.series.setdefault(key, ([], []))
        xs.append(step)
        ys.append(value)
        self._dirty = True

    def set_series(self, key: str, steps: list[float], values: list[float]) -> None:
        self.series[key] = (list(steps), list(values))
        self._dirty = True

    def clear_all(self) -> None:
        self.series.clear()
        for item in self._items.values():
            self.removeItem(item)
        self._items.clear()
        self.plotItem.legend.clear()

    def redraw(self) -> None:
        """Cheap to call often: only touches the plot when points arrived since last time."""
        if not self._dirty:
            return
        for i, (key, (xs, ys)) in enumerate(sorted(self.series.items())):
            item = self._items.get(key)
            if item is None:
                pen = pg.mkPen(COLORS[i % len(COLORS)], width=2)
                # no point symbols: pyqtgraph's scatter painting crashed under PySide6 on frequent redraws
                item = self._items[key] = self.plot([], [], pen=pen, name=key)
            item.setData(xs, ys)
        self._dirty = False
