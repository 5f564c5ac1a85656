"""A 2-D scatter coloured by class, with a legend (e.g. embeddings reduced to two dimensions)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg

from .curves import COLORS

PALETTE = COLORS + ["#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]


class ScatterWidget(pg.PlotWidget):
    def __init__(self, parent=None, title: str = "", x_label: str = "", y_label: str = ""):
        super().__init__(parent, background="w")
        self.setTitle(title, color="#333", size="11pt")
        self.setLabel("bottom", x_label)
        self.setLabel("left", y_label)
        self.showGrid(x=True, y=True, alpha=0.2)
        self.addLegend(offset=(-10, 10), labelTextColor="#333")
        self.points = np.zeros((0, 2))
        self.labels = np.zeros(0, dtype=int)
        self.items: dict[str, pg.ScatterPlotItem] = {}

    def set_data(self, points, labels: Sequence, class_names: Sequence[str] | dict | None = None,
                 size: float = 6) -> None:
        """points: (N, 2); labels: N class labels (ints or strings); class_names maps a label to its name."""
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"expected an N x 2 array of points, got shape {points.shape}")
        labels = np.asarray(labels)
        if len(labels) != len(points):
            raise ValueError(f"{len(points)} points but {len(labels)} labels")
        self.clear_points()
        self.points, self.labels = points, labels
        for i, label in enumerate(np.unique(labels)):
            if isinstance(class_names, dict):
                name = str(class_names.get(label.item() if hasattr(label, "item") else label, label))
            elif class_names is not None and np.issubdtype(labels.dtype, np.integer):
                name = str(class_names[int(label)])
            else:
                name = str(label)
            mask = labels == label
            color = PALETTE[i % len(PALETTE)]
            item = pg.ScatterPlotItem(points[mask, 0], points[mask, 1], size=size, pen=None,
                                      brush=pg.mkBrush(color), name=name)
            self.addItem(item)
            self.items[name] = item

    def clear_points(self) -> None:
        for item in self.items.values():
            self.removeItem(item)
        self.items.clear()
        if self.plotItem.legend is not None:
            self.plotItem.legend.clear()
