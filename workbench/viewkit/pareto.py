"""Quality against cost across runs, with the Pareto front (lower cost, higher quality) drawn."""
from __future__ import annotations

from typing import Sequence

import pyqtgraph as pg


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point dominates (minimise x = cost, maximise y = quality), by cost."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for x2, y2 in points)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


class ParetoWidget(pg.PlotWidget):
    def __init__(self, parent=None, cost_label: str = "cost", quality_label: str = "quality", title: str = ""):
        super().__init__(parent, background="w")
        self.setTitle(title, color="#333", size="11pt")
        self.setLabel("bottom", cost_label)
        self.setLabel("left", quality_label)
        self.showGrid(x=True, y=True, alpha=0.25)
        for axis in ("bottom", "left"):  # accuracy 0.9 must not read as "900 (x0.001)"
            self.getAxis(axis).enableAutoSIPrefix(False)
        self.points: list[tuple[float, float]] = []
        self.labels: list[str] = []
        self.front: list[int] = []
        self.text_items: list[pg.TextItem] = []

    def set_points(self, points: Sequence[tuple[float, float]], labels: Sequence[str] | None = None) -> None:
        self.clear()
        self.points = [(float(x), float(y)) for x, y in points]
        self.labels = list(labels) if labels is not None else [str(i) for i in range(len(points))]
        if len(self.labels) != len(self.points):
            raise ValueError(f"{len(self.points)} points but {len(self.labels)} labels")
        self.front = pareto_front(self.points)
        on_front = set(self.front)
        rest = [p for i, p in enumerate(self.points) if i not in on_front]
        if rest:
            self.addItem(pg.ScatterPlotItem([p[0] for p in rest], [p[1] for p in rest], size=9, pen=None,
                                            brush=pg.mkBrush("#9aa4b1")))
        if self.front:
            fx = [self.points[i][0] for i in self.front]
            fy = [self.points[i][1] for i in self.front]
            self.plot(fx, fy, pen=pg.mkPen("#d62728", width=2))
            self.addItem(pg.ScatterPlotItem(fx, fy, size=11, pen=pg.mkPen("#8b0000"), brush=pg.mkBrush("#d62728")))
        self.text_items = []
        for (x, y), label in zip(self.points, self.labels):
            text = pg.TextItem(label, color="#333", anchor=(-0.1, 1.1))
            text.setPos(x, y)
            self.addItem(text)
            self.text_items.append(text)
        if self.points:  # room on the right and top for the labels of the extreme points
            xs = [p[0] for p in self.points]
            ys = [p[1] for p in self.points]
            dx = (max(xs) - min(xs)) or abs(max(xs)) or 1.0
            dy = (max(ys) - min(ys)) or abs(max(ys)) or 1.0
            self.setXRange(min(xs) - 0.05 * dx, max(xs) + 0.22 * dx, padding=0)
            self.setYRange(min(ys) - 0.08 * dy, max(ys) + 0.12 * dy, padding=0)
