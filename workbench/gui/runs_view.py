"""Runs from the store: a sortable, filterable table, the selected run's detail, and a compare
view of several runs (the config keys that differ, last metrics side by side, overlaid curves).

The table is refreshed when a run ends and by a cheap timer: while the tab is visible it
reads the run list every few seconds and rebuilds only when ids, statuses or durations changed.
"""
from __future__ import annotations

import json
import time
from collections import Counter

from PySide6.QtCore import QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPushButton, QSplitter, QTableView, QTableWidget, QTableWidgetItem, QTabWidget,
                               QVBoxLayout, QWidget)

from workbench.viewkit import CurvesWidget, ParetoWidget
from workbench.viewkit.curves import COLORS

from .job_panel import STATUS_COLORS, format_duration
from .messages import fmt_value, sort_value
from .run_detail import RunDetail

FIXED = ("run", "pipeline", "status", "seed", "duration", "created")
MAX_METRIC_COLUMNS = 5
SORT_ROLE = Qt.UserRole + 1


class RunsView(QWidget):
    use_config_requested = Signal(str)

    def __init__(self, session, parent=None, poll_ms: int = 3000):
        super().__init__(parent)
        self.session = session
        self.metric_keys: list[str] = []
        self._fingerprint: tuple | None = None
        self._last_cache: dict[str, tuple[tuple, dict]] = {}
        self.model = QStandardItemModel(0, len(FIXED))
        self.model.setHorizontalHeaderLabels(FIXED)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setObjectName("runsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(FIXED.index("created"), Qt.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.verticalHeader().hide()
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.filter = QLineEdit(placeholderText="Filter runs: id, pipeline, status, metric…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.count_label = QLabel("")
        self.count_label.setStyleSheet("color: #6b7280;")
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(lambda: self.refresh(force=True))
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Select two or more runs (Ctrl/Shift-click), then compare them.")
        self.compare_button.clicked.connect(self.compare)
        self.compare_button.setEnabled(False)
        self.detail = RunDetail(session)
        self.detail.use_config_requested.connect(self.use_config_requested)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.count_label)
        top.addWidget(refresh)
        top.addWidget(self.compare_button)
        upper = QWidget()
        uv = QVBoxLayout(upper)
        uv.setContentsMargins(0, 0, 0, 0)
        uv.addLayout(top)
        uv.addWidget(self.table)
        split = QSplitter(Qt.Vertical)
        split.addWidget(upper)
        split.addWidget(self.detail)
        split.setSizes([280, 460])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(split)
        self.compare_dialog: CompareDialog | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self._poll)
        self.timer.start()
        self.refresh(force=True)

    # -- filling -------------------------------------------------------------------------
    def _poll(self) -> None:
        if self.isVisible():
            self.refresh()

    def refresh(self, force: bool = False) -> bool:
        """Re-read the store; rebuild the table only when something changed. True if rebuilt."""
        runs = self.session.store.list_runs()
        fingerprint = tuple((r["id"], r["status"], r["duration_s"]) for r in runs)
        if not force and fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        selected = set(self.selected_ids())
        last = {}
        for r, entry in zip(runs, fingerprint):  # a finished run's metrics do not change: read them once
            cached = self._last_cache.get(r["id"])
            if cached is None or cached[0] != entry or r["status"] in ("running", "queued"):
                cached = self._last_cache[r["id"]] = (entry, self.session.store.last_metrics(r["id"]))
            last[r["id"]] = cached[1]
        counts = Counter(k for m in last.values() for k in m)
        self.metric_keys = sorted(k for k, _ in counts.most_common(MAX_METRIC_COLUMNS))
        header = self.table.horizontalHeader()
        sort_col, sort_order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        sort_name = self.model.headerData(sort_col, Qt.Horizontal) if 0 <= sort_col < self.model.columnCount() else None
        self.table.setSortingEnabled(False)
        self.model.clear()
        columns = list(FIXED) + self.metric_keys
        self.model.setHorizontalHeaderLabels(columns)
        for run in runs:
            m = last[run["id"]]
            cells: list[tuple[str, object]] = [
                (run["id"], run["id"]),
                (f"{run['plugin']}.{run['pipeline']}", f"{run['plugin']}.{run['pipeline']}"),
                (run["status"], run["status"]),
                (str(run["seed"]), run["seed"]),
                (format_duration(run["duration_s"]) if run["duration_s"] else "", run["duration_s"] or 0.0),
                (time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created"])), run["created"]),
            ]
            cells += [(fmt_value(m[k]) if k in m else "", sort_value(m.get(k))) for k in self.metric_keys]
            items = []
            for text, key in cells:
                item = QStandardItem(text)
                item.setData(key, SORT_ROLE)
                item.setEditable(False)
                items.append(item)
            items[2].setForeground(QBrush(QColor(STATUS_COLORS.get(run["status"], "#333"))))
            items[0].setToolTip(json.dumps(run["config"], indent=1))
            self.model.appendRow(items)
        self.table.setSortingEnabled(True)
        if sort_name in columns:
            self.table.sortByColumn(columns.index(sort_name), sort_order)
        else:
            self.table.sortByColumn(FIXED.index("created"), Qt.DescendingOrder)
        self.table.resizeColumnsToContents()
        self.count_label.setText(f"{len(runs)} run{'s' if len(runs) != 1 else ''}")
        if selected:
            self.select_runs(selected)
        return True

    def row_of(self, run_id: str) -> int:
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data() == run_id:
                return row
        return -1

    def select_runs(self, run_ids) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        for run_id in run_ids:
            row = self.row_of(run_id)
            if row >= 0:
                selection.select(self.proxy.index(row, 0),
                                 selection.SelectionFlag.Select | selection.SelectionFlag.Rows)

    def rows(self) -> dict[str, dict[str, str]]:
        """What the table shows, by run id (for tests)."""
        heads = [self.model.headerData(c, Qt.Horizontal) for c in range(self.model.columnCount())]
        return {self.proxy.index(r, 0).data(): {h: self.proxy.index(r, c).data() for c, h in enumerate(heads)}
                for r in range(self.proxy.rowCount())}

    # -- selection -----------------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        return [self.proxy.index(i.row(), 0).data() for i in self.table.selectionModel().selectedRows()]

    def _selection_changed(self, *_) -> None:
        ids = self.selected_ids()
        self.compare_button.setEnabled(len(ids) >= 2)
        self.compare_button.setText(f"Compare {len(ids)}" if len(ids) >= 2 else "Compare")
        if len(ids) == 1 and ids[0] != self.detail.run_id:
            self.detail.show_run(ids[0])

    def compare(self) -> "CompareDialog | None":
        ids = self.selected_ids()
        if len(ids) < 2:
            return None
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = CompareDialog(self.session, ids, self)
        self.compare_dialog.show()
        return self.compare_dialog


class CompareView(QWidget):
    """Runs side by side: what differs in their configs, their last metrics, their curves."""

    def __init__(self, session, run_ids: list[str], parent=None):
        super().__init__(parent)
        store = session.store
        self.runs = [store.get_run(r) for r in run_ids]
        runs = self.runs
        keys = list(dict.fromkeys(k for r in runs for k in r["config"]))
        self.differing = [k for k in keys if len({json.dumps(r["config"].get(k), sort_keys=True) for r in runs}) > 1]
        metrics = [store.last_metrics(r["id"]) for r in runs]
        metric_keys = sorted({k for m in metrics for k in m})
        self.metric_keys = metric_keys
        rows: list[tuple[str, list[str], str]] = [
            ("pipeline", [f"{r['plugin']}.{r['pipeline']}" for r in runs], "info"),
            ("status", [r["status"] for r in runs], "info"),
            ("duration", [format_duration(r["duration_s"]) if r["duration_s"] else "" for r in runs], "info"),
        ]
        rows += [(f"config: {k}", ["—" if k not in r["config"] else json.dumps(r["config"][k]) for r in runs], "config")
                 for k in self.differing]
        rows += [(f"metric: {k}", [fmt_value(m[k], 6) if k in m else "" for m in metrics], "metric") for k in metric_keys]
        self.table = QTableWidget(len(rows), len(runs))
        self.table.setObjectName("compareTable")
        self.table.setHorizontalHeaderLabels([r["id"] for r in runs])
        self.table.setVerticalHeaderLabels([name for name, _, _ in rows])
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        bold = QFont()
        bold.setBold(True)
        for i, (_, values, kind) in enumerate(rows):
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                if kind == "config":
                    item.setBackground(QBrush(QColor("#fff4d6")))
                    item.setFont(bold)
                self.table.setItem(i, j, item)
        # a coloured swatch in each run's header: the colour of its curves below
        for j, r in enumerate(runs):
            head = self.table.horizontalHeaderItem(j)
            head.setForeground(QBrush(QColor(COLORS[j % len(COLORS)])))
            head.setFont(bold)
            head.setToolTip(json.dumps(r["config"], indent=1))
        self.table.resizeColumnsToContents()
        bold_metrics = QFontMetrics(bold)
        for j in range(len(runs)):  # the bold run ids in the header must fit too
            need = bold_metrics.horizontalAdvance(self.table.horizontalHeaderItem(j).text()) + 28
            self.table.setColumnWidth(j, max(self.table.columnWidth(j), need))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setCurrentCell(-1, -1)
        self.curves = CurvesWidget(title="metrics of the compared runs (colour: run, line style: metric)")
        for j, r in enumerate(runs):
            for s, key in enumerate(metric_keys):
                pts = store.metrics(r["id"], key)
                if pts:
                    self.curves.set_series(f"{r['id'][-6:]} {key}", [p["step"] for p in pts], [p["value"] for p in pts],
                                           color=COLORS[j % len(COLORS)], style=s)
        self.curves.redraw()
        same = len(keys) - len(self.differing)
        if self.differing:
            text = (f"<b>{len(self.differing)}</b> of {len(keys)} config keys differ: "
                    f"<b>{', '.join(self.differing)}</b> ({same} identical, not shown)")
        else:
            text = f"The {len(keys)} config keys are identical; only the results differ."
        self.note = QLabel(text)
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.curves)
        table_height = self.table.horizontalHeader().height() + sum(
            self.table.rowHeight(i) for i in range(self.table.rowCount())) + 6
        split.setSizes([min(table_height, 380), 400])
        self.pareto = ParetoPanel(run_results(store, run_ids))
        self.tabs = QTabWidget()
        self.tabs.addTab(split, "Configs and curves")
        self.tabs.addTab(self.pareto, "Pareto")
        layout.addWidget(self.tabs, 1)

    def row_labels(self) -> list[str]:
        return [self.table.verticalHeaderItem(i).text() for i in range(self.table.rowCount())]


# what a metric name says about its direction: these are costs (lower is better)
COST_WORDS = ("latency", "storage", "bytes", "_mb", "params", "macs", "activation", "memory", "seconds", "duration")
QUALITY_HINTS = ("gamma_2_2", "accuracy", "pass")


def run_results(store, run_ids: list[str]) -> dict[tuple[str, str], dict[str, float]]:
    """Everything a run reports as a summary, by (run, subject): its run-level evaluations
    (case empty; subject as recorded) and its last metrics (subject "run")."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for run_id in run_ids:
        for row in store.evaluations(run_id):
            if not row.get("case_id"):
                out.setdefault((run_id, row["subject"]), {})[row["metric"]] = float(row["value"])
        last = store.last_metrics(run_id)
        if last:
            out.setdefault((run_id, "run"), {}).update({k: float(v) for k, v in last.items()})
    return out


def _is_cost(name: str) -> bool:
    return any(w in name.lower() for w in COST_WORDS)


class ParetoPanel(QWidget):
    """Quality against cost across the compared runs: one point per (run, subject) that
    reports both metrics, e.g. each run's student and teacher; the front is drawn in red."""

    def __init__(self, results: dict[tuple[str, str], dict[str, float]], parent=None):
        super().__init__(parent)
        self.results = results
        names = sorted({m for metrics in results.values() for m in metrics})
        costs = [n for n in names if _is_cost(n)]
        qualities = [n for n in names if not _is_cost(n)]
        self.quality = QComboBox()
        self.quality.setObjectName("paretoQuality")
        self.quality.addItems(qualities)
        self.cost = QComboBox()
        self.cost.setObjectName("paretoCost")
        self.cost.addItems(costs or names)
        for hint in QUALITY_HINTS:
            hits = [i for i, n in enumerate(qualities) if hint in n.lower()]
            if hits:
                self.quality.setCurrentIndex(hits[0])
                break
        self.plot = ParetoWidget(title="quality against cost across the compared runs (red: the Pareto front)")
        self.note = QLabel()
        self.note.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Quality:"))
        bar.addWidget(self.quality, 1)
        bar.addWidget(QLabel("Cost:"))
        bar.addWidget(self.cost, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        self.quality.currentTextChanged.connect(self.redraw)
        self.cost.currentTextChanged.connect(self.redraw)
        self.redraw()

    def points(self) -> tuple[list[tuple[float, float]], list[str]]:
        q, c = self.quality.currentText(), self.cost.currentText()
        pts, labels = [], []
        for (run_id, subject), metrics in self.results.items():
            if q in metrics and c in metrics:
                pts.append((metrics[c], metrics[q]))
                labels.append(f"{run_id[-6:]} {subject}" if subject != "run" else run_id[-6:])
        return pts, labels

    def redraw(self, *_) -> None:
        pts, labels = self.points()
        self.plot.setLabel("bottom", self.cost.currentText() or "cost")
        self.plot.setLabel("left", self.quality.currentText() or "quality")
        self.plot.set_points(pts, labels)
        if not pts:
            self.note.setText("No compared run reports both metrics; pick others above.")
        else:
            self.note.setText(f"{len(pts)} points, {len(self.plot.front)} on the front (lower cost, higher quality).")


class CompareDialog(QDialog):
    def __init__(self, session, run_ids: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Compare {len(run_ids)} runs")
        self.resize(1000, 720)
        self.view = CompareView(session, run_ids, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.view)

    # shortcuts used by tests and the screenshot script
    @property
    def differing(self) -> list[str]:
        return self.view.differing

    @property
    def table(self) -> QTableWidget:
        return self.view.table
