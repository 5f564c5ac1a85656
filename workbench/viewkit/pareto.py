"""Quality against cost across runs, with the Pareto front (lower cost, higher quality)."""
from __future__ import annotations

import pyqtgraph as pg


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated by another (minimise x = cost, maximise y = quality)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for x2, y2 in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


class ParetoWidget(pg.PlotWidget):
    def __init__(self, parent=None, cost_label: str = "cost", quality_label: str = "quality"):
        super().__init__(parent, background="w")
        self.setLabel("bottom", cost_label)
        self.setLabel("left", quality_label)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.front: list[int] = []

    def set_points(self, points: list[tuple[float, float]], labels: list[str]) -> None:
        self.clear()
        self.addItem(pg.ScatterPlotItem([p[0] for p in points], [p[1] for p in points], size=9,
                                        brush=pg.mkBrush("#1f77b4")))
        self.front = pareto_front(points)
        self.plot([points[i][0] for i in self.front], [points[i][1] for i in self.front], pen=pg.mkPen("#d62728", width=2))
        for (x, y), label in zip(points, labels):
            text = pg.TextItem(label, color="#333", anchor=(0, 1))
            text.setPos(x, y)
            self.addItem(text)
