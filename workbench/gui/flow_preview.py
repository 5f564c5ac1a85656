"""Previews of flow steps: computed in the flow worker process, rendered here from plain data.

`PreviewRunner` sends a step's ``preview(config, ctx)`` to the flow worker (see flow_worker:
torch and the profiler never run in the GUI process) and hands the `Preview` (or a readable
error) back on the UI thread through a queued signal. A newer request supersedes an older one:
the older one's context reports `cancelled` and its result is dropped, so typing in a field
never queues up stale work. `PreviewView` renders a `Preview`: key figures, warnings, tables,
images with markers and scatter plots.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QGridLayout, QHeaderView, QLabel, QPushButton, QSizePolicy, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from workbench.api import Image, Preview, Scatter, Table
from workbench.viewkit.scatter import PALETTE

from .flow_worker import worker
from .messages import DetailDialog, ErrorLine, esc, fmt_value

WARN = "#a15c00"


class PreviewRunner(QObject):
    """One step's previews, computed by the flow worker process; `finished(generation, preview,
    error, detail)` arrives on the UI thread. Only the newest request counts."""

    finished = Signal(int, object, str, str)

    def __init__(self, home: Path, plugin, pipeline_id: str, target: str, parent=None):
        super().__init__(parent)
        self.home, self.plugin, self.pipeline_id, self.target = Path(home), plugin, pipeline_id, target
        self.worker = worker()
        self.slot = self.worker.new_slot()
        self.generation = 0
        self.busy = False

    def request(self, config) -> int:
        """Ask for a preview of `config`; an earlier one not yet finished is superseded."""
        self.generation += 1
        generation = self.generation
        self.busy = True
        signal = self.finished

        def done(value, error: str, detail: str) -> None:  # the worker's reader thread: no widgets here
            try:
                signal.emit(generation, value, error, detail)
            except RuntimeError:  # the page was closed meanwhile
                pass

        payload = {"plugin": self.plugin, "home": str(self.home), "pipeline": self.pipeline_id,
                   "target": self.target, "config": config.model_dump(mode="json")}
        self.worker.submit("preview", payload, done, self.slot, generation)
        return generation

    def accept(self, generation: int) -> bool:
        """True when a finished preview is the newest one asked for (older ones are dropped)."""
        if generation != self.generation:
            return False
        self.busy = False
        return True

    def stop(self) -> None:
        self.generation += 1
        self.worker.supersede(self.slot, self.generation)
        self.busy = False


# -- rendering --------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, float):
        return fmt_value(value, 4)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,d}"
    return str(value)


def table_widget(table: Table) -> QTableWidget:
    w = QTableWidget(len(table.rows), len(table.columns))
    w.setObjectName("previewTable")
    w.setHorizontalHeaderLabels([str(c) for c in table.columns])
    w.verticalHeader().setVisible(False)
    w.setEditTriggers(QTableWidget.NoEditTriggers)
    w.setAlternatingRowColors(True)
    for r, row in enumerate(table.rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem(_cell(value))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            w.setItem(r, c, item)
    header = w.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeToContents)
    header.setStretchLastSection(True)
    w.setSizeAdjustPolicy(QTableWidget.AdjustIgnored)  # never wider than the pane: columns scroll instead
    w.verticalHeader().setDefaultSectionSize(24)
    shown = min(len(table.rows), 12)
    height = header.sizeHint().height() + 24 * shown + 2 * w.frameWidth() + 12  # + the styled header's padding
    if len(table.columns) > 4:  # may need the horizontal scroll bar: keep the last row clear of it
        height += w.horizontalScrollBar().sizeHint().height()
    w.setFixedHeight(max(height, 40))
    return w


def _colormap(name: str):
    try:
        return pg.colormap.get(name)
    except Exception:  # noqa: BLE001 - an unknown name: fall back rather than fail the preview
        try:
            return pg.colormap.get(name, source="matplotlib")
        except Exception:  # noqa: BLE001
            return pg.colormap.get("viridis")


def image_widget(image: Image) -> pg.PlotWidget:
    data = np.asarray(image.data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"image {image.title!r}: expected a 2-D array, got shape {data.shape}")
    plot = pg.PlotWidget(background="w")
    plot.setTitle(esc(image.title), color="#333", size="9pt")
    item = pg.ImageItem(data, axisOrder="row-major")
    lut = _colormap(image.colormap).getLookupTable(nPts=256)
    item.setLookupTable(lut)
    finite = data[np.isfinite(data)]
    levels = image.levels or ((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    if levels[0] == levels[1]:
        levels = (levels[0], levels[0] + 1.0)
    item.setLevels(levels)
    rows, cols = data.shape
    x0, x1, y0, y1 = image.extent or (0.0, float(cols), 0.0, float(rows))
    item.setRect(x0, y0, x1 - x0, y1 - y0)
    plot.addItem(item)
    plot.getPlotItem().invertY(image.origin != "lower")  # "upper": rows top to bottom, as the array prints
    if image.points is not None and len(image.points):
        pts = np.asarray(image.points, dtype=float).reshape(-1, 2)
        sx, sy = (x1 - x0) / cols, (y1 - y0) / rows
        marks = pg.ScatterPlotItem(x=x0 + (pts[:, 1] + 0.5) * sx, y=y0 + (pts[:, 0] + 0.5) * sy, size=7,
                                   pen=pg.mkPen("#ffffff", width=1), brush=pg.mkBrush("#ff3b30"), symbol="o")
        plot.addItem(marks)
    plot.setLabel("bottom", image.x_label)
    plot.setLabel("left", image.y_label)
    plot.setAspectLocked(image.extent is None or abs((x1 - x0) / cols - (y1 - y0) / rows) < 1e-9)
    plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)
    plot.setMinimumHeight(220)
    plot.setMaximumHeight(300)  # room below for the preview's tables
    plot.image_item = item
    return plot


def scatter_widget(sc: Scatter) -> pg.PlotWidget:
    x, y = np.asarray(sc.x, dtype=float), np.asarray(sc.y, dtype=float)
    plot = pg.PlotWidget(background="w")
    plot.setTitle(esc(sc.title), color="#333", size="9pt")
    plot.showGrid(x=True, y=True, alpha=0.2)
    legend = plot.addLegend(offset=(-10, 10), labelTextColor="#333")
    labels = np.asarray(sc.labels) if sc.labels is not None else None
    highlight = np.asarray(sc.highlight, dtype=bool) if sc.highlight is not None else None
    if labels is not None:
        for i, label in enumerate(np.unique(labels)):
            m = labels == label
            color = PALETTE[i % len(PALETTE)]
            plot.addItem(pg.ScatterPlotItem(x=x[m], y=y[m], size=5, pen=None, brush=pg.mkBrush(color + "88"),
                                            name=str(label)))
    else:
        plot.addItem(pg.ScatterPlotItem(x=x, y=y, size=5, pen=None, brush=pg.mkBrush("#9aa0a888"),
                                        name="all" if highlight is not None else None))
    if highlight is not None and highlight.any():
        plot.addItem(pg.ScatterPlotItem(x=x[highlight], y=y[highlight], size=9, pen=pg.mkPen("#111", width=1.2),
                                        brush=pg.mkBrush(0, 0, 0, 0), symbol="o",
                                        name=f"sampled ({int(highlight.sum()):,d})"))
    if not legend.items:
        plot.getPlotItem().legend = None
        legend.scene().removeItem(legend) if legend.scene() else None
    plot.setLabel("bottom", sc.x_label)
    plot.setLabel("left", sc.y_label)
    plot.setMinimumHeight(260)
    return plot


class PreviewView(QWidget):
    """Renders one `Preview`, a 'computing…' note, or an error with its detail one click away."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("previewView")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(8)
        self.error_line = ErrorLine()
        self.note = QLabel()
        self.note.setStyleSheet("color: #6b7280;")
        self.note.setWordWrap(True)
        self.layout_.addWidget(self.note)
        self.layout_.addWidget(self.error_line)
        self.body = QWidget()
        self.layout_.addWidget(self.body)
        self.layout_.addStretch(1)
        self.preview: Preview | None = None
        self._todo: list = []
        self._build_token = 0
        self.figure_labels: dict[str, QLabel] = {}
        self.dialog: DetailDialog | None = None
        self.show_note("")

    def _replace_body(self) -> QVBoxLayout:
        self._todo = []
        self._build_token += 1
        old = self.body
        self.body = QWidget()
        self.layout_.replaceWidget(old, self.body)
        old.deleteLater()
        col = QVBoxLayout(self.body)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(8)
        return col

    def show_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def show_error(self, message: str, detail: str) -> None:
        self.preview = None
        self._replace_body()
        self.show_note("")
        self.error_line.show_error(f"Preview failed: {message}", detail, title="Preview failed")

    def clear(self, note: str = "") -> None:
        self.preview = None
        self.error_line.clear()
        self._replace_body()
        self.show_note(note)

    def show_preview(self, preview: Preview) -> None:
        self.preview = preview
        self.error_line.clear()
        self.show_note("")
        col = self._replace_body()
        self.figure_labels = {}
        if preview.summary:
            summary = QLabel(esc(preview.summary))
            summary.setWordWrap(True)
            summary.setObjectName("previewSummary")
            col.addWidget(summary)
        if preview.figures:
            grid_box = QWidget()
            grid = QGridLayout(grid_box)
            grid.setContentsMargins(0, 0, 0, 0)
            grid.setHorizontalSpacing(18)
            per_row = 3
            for i, (name, value) in enumerate(preview.figures.items()):
                cell = QLabel(f"<span style='color:#6b7280; font-size:11px'>{esc(name)}</span><br>"
                              f"<span style='font-size:15px; font-weight:600'>{esc(value)}</span>")
                cell.setTextInteractionFlags(Qt.TextSelectableByMouse)
                self.figure_labels[name] = cell
                grid.addWidget(cell, i // per_row, i % per_row)
            col.addWidget(grid_box)
        if preview.warnings:
            shown = preview.warnings[:4]
            more = len(preview.warnings) - len(shown)
            text = "<br>".join(f"⚠ {esc(w)}" for w in shown)
            if more:
                text += f"<br>… and {more} more"
            warn = QLabel(text)
            warn.setObjectName("previewWarnings")
            warn.setWordWrap(True)
            warn.setStyleSheet(f"color: {WARN};")
            col.addWidget(warn)
            if more:
                button = QPushButton(f"All {len(preview.warnings)} warnings…")
                button.clicked.connect(self.show_all_warnings)
                col.addWidget(button, 0, Qt.AlignLeft)
        # Plots and tables are built one per event-loop turn: a pyqtgraph plot costs tens of
        # milliseconds to build and paint, and a preview with four of them built at once would
        # hold the event loop (and a running job's progress) for a few hundred.
        todo: list = []
        items = [(image_widget, im, im.title) for im in preview.images] + \
                [(scatter_widget, sc, sc.title) for sc in preview.scatters]
        if items:
            box = QWidget()
            grid = QGridLayout(box)
            grid.setContentsMargins(0, 0, 0, 0)
            per_row = min(len(items), 3 if len(items) >= 3 and not preview.scatters else 2)
            col.addWidget(box)
            for i, (make, item, title) in enumerate(items):
                todo.append(lambda g=grid, i=i, m=make, it=item, t=title:
                            g.addWidget(self._guard(m, it, t), i // per_row, i % per_row))
            captions = [p.caption for p in (*preview.images, *preview.scatters) if p.caption]
            if captions:
                cap = QLabel(" · ".join(esc(c) for c in captions))
                cap.setWordWrap(True)
                cap.setStyleSheet("color: #6b7280; font-size: 11px;")
                col.addWidget(cap)
        for table in preview.tables:
            def add_table(table=table, col=col) -> None:
                head = QLabel(f"<b>{esc(table.title)}</b>" + (
                    f" <span style='color:#6b7280'>{esc(table.note)}</span>" if table.note else ""))
                head.setWordWrap(True)
                col.addWidget(head)
                col.addWidget(table_widget(table))
            todo.append(add_table)
        self.body.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        self._todo = todo
        self._build_token += 1
        self._build_next(self._build_token)

    @property
    def building(self) -> bool:
        """True while parts of the shown preview are still being built."""
        return bool(self._todo)

    def _build_next(self, token: int) -> None:
        if token != self._build_token or not self._todo:  # a newer preview replaced this one
            return
        self._todo.pop(0)()
        if self._todo:
            QTimer.singleShot(0, lambda: self._build_next(token))

    def _guard(self, make, item, title: str) -> QWidget:
        try:
            return make(item)
        except Exception as exc:  # noqa: BLE001 - one bad plot must not hide the rest of the preview
            line = ErrorLine()
            line.show_error(f"{title}: cannot draw: {exc}", traceback.format_exc(), title="Preview plot failed")
            return line

    def show_all_warnings(self) -> DetailDialog:
        warnings = self.preview.warnings if self.preview else []
        self.dialog = DetailDialog("Warnings", f"{len(warnings)} warnings", "\n".join(warnings), self.window())
        self.dialog.open()
        return self.dialog
