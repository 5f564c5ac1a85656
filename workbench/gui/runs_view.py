"""Runs from the store: a sortable, filterable table, a detail pane, and a compare view."""
from __future__ import annotations

import json

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSplitter,
                               QTableView, QTableWidget, QTableWidgetItem, QTabWidget, QTextBrowser, QVBoxLayout, QWidget)

from workbench.api import load_target
from workbench.viewkit import CurvesWidget

COLUMNS = ("run", "pipeline", "status", "seed", "duration s", "created", "last metrics")


class RunsView(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.model = QStandardItemModel(0, len(COLUMNS))
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.proxy.setSortRole(Qt.UserRole)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.filter = QLineEdit(placeholderText="filter runs (id, pipeline, status…)")
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        refresh, self.compare_button = QPushButton("Refresh"), QPushButton("Compare selected")
        refresh.clicked.connect(self.refresh)
        self.compare_button.clicked.connect(self.compare)
        self.compare_button.setEnabled(False)
        self.detail = RunDetail(session)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(refresh)
        top.addWidget(self.compare_button)
        upper = QWidget()
        uv = QVBoxLayout(upper)
        uv.addLayout(top)
        uv.addWidget(self.table)
        split = QSplitter(Qt.Vertical)
        split.addWidget(upper)
        split.addWidget(self.detail)
        split.setSizes([300, 420])
        QVBoxLayout(self).addWidget(split)
        self.compare_dialog = None
        self.refresh()

    def refresh(self) -> None:
        selected = set(self.selected_ids())
        self.model.setRowCount(0)
        for run in self.session.store.list_runs():
            last = self.session.store.last_metrics(run["id"])
            cells = [run["id"], f"{run['plugin']}.{run['pipeline']}", run["status"], run["seed"],
                     round(run["duration_s"], 1) if run["duration_s"] else None, run["created"],
                     ", ".join(f"{k}={v:.4g}" for k, v in list(last.items())[:3])]
            items = []
            for value in cells:
                item = QStandardItem("" if value is None else str(value))
                item.setData(value if value is not None else -1, Qt.UserRole)
                item.setEditable(False)
                items.append(item)
            items[5].setText(_ago(run["created"]))
            self.model.appendRow(items)
        self.table.resizeColumnsToContents()
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data() in selected:
                self.table.selectRow(row)

    def selected_ids(self) -> list[str]:
        return [self.proxy.index(i.row(), 0).data() for i in self.table.selectionModel().selectedRows()]

    def _selection_changed(self, *_) -> None:
        ids = self.selected_ids()
        self.compare_button.setEnabled(len(ids) >= 2)
        if len(ids) == 1:
            self.detail.show_run(ids[0])

    def compare(self) -> None:
        self.compare_dialog = CompareDialog(self.session, self.selected_ids(), self)
        self.compare_dialog.show()


def _ago(created: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))


class RunDetail(QTabWidget):
    """A run's record, and the plugin's views for its artifacts (built lazily, errors shown)."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.summary = QTextBrowser()
        self.addTab(self.summary, "Run")
        self.views: dict[str, QWidget] = {}

    def show_run(self, run_id: str) -> None:
        while self.count() > 1:
            self.removeTab(1)
        self.views = {}
        store = self.session.store
        run = store.get_run(run_id)
        rows = "".join(f"<tr><td>{k}</td><td><code>{json.dumps(v)}</code></td></tr>" for k, v in run["config"].items())
        metrics = "".join(f"<tr><td>{k}</td><td>{v:.6g}</td></tr>" for k, v in store.last_metrics(run_id).items())
        evals = "".join(f"<tr><td>{e['subject']}</td><td>{e['metric']}</td><td>{e['value']:.6g}</td><td>{e['criteria']}</td>"
                        f"<td>{e['case_id']}</td></tr>" for e in store.evaluations(run_id)[:200])
        arts = store.artifacts(run_id)
        art_rows = "".join(f"<tr><td>{a['kind']}</td><td>{a['bytes']:,d} B</td><td>{a['path']}</td></tr>" for a in arts)
        logs = "".join(f"<div style='color:{'#b00020' if l['level'] == 'error' else '#555'}'>{l['level']}: "
                       f"<pre style='margin:0'>{_esc(l['message'])}</pre></div>" for l in store.logs(run_id)[-50:])
        error = f"<p style='color:#b00020'><b>{_esc(run['error'])}</b></p>" if run["error"] else ""
        self.summary.setHtml(
            f"<h3>{run['id']} — {run['plugin']}.{run['pipeline']} — {run['status']}</h3>{error}"
            f"<p>seed {run['seed']} · device {run['device']} · host {run['host']} · "
            f"{(run['duration_s'] or 0):.1f} s · folder {self.session.run_dir(run_id)}</p>"
            f"<h4>Config</h4><table>{rows}</table><h4>Last metrics</h4><table>{metrics}</table>"
            f"<h4>Evaluations</h4><table>{evals}</table><h4>Artifacts</h4><table>{art_rows}</table>"
            f"<h4>Log</h4>{logs}")
        try:
            plugin = self.session.plugins.get(run["plugin"])
        except Exception:  # noqa: BLE001 - the plugin may be gone; the record still shows
            return
        kinds = {a["kind"] for a in arts}
        for view in plugin.views:
            if kinds & set(view.accepts):
                try:
                    widget = load_target(view.factory)(run, arts, self)
                except Exception as exc:  # noqa: BLE001 - a broken view shows its error, never crashes
                    widget = QLabel(f"view {view.id} failed: {type(exc).__name__}: {exc}")
                    widget.setStyleSheet("color: #b00020")
                    widget.setWordWrap(True)
                self.views[view.id] = widget
                self.addTab(widget, view.title)


def _esc(text: str) -> str:
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class CompareDialog(QDialog):
    """Selected runs side by side: the config keys that differ, last metrics, overlaid curves."""

    def __init__(self, session, run_ids: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Compare {len(run_ids)} runs")
        self.resize(1000, 640)
        store = session.store
        runs = [store.get_run(r) for r in run_ids]
        keys = sorted({k for r in runs for k in r["config"]})
        self.differing = [k for k in keys if len({json.dumps(r["config"].get(k)) for r in runs}) > 1]
        metrics = [store.last_metrics(r["id"]) for r in runs]
        metric_keys = sorted({k for m in metrics for k in m})
        rows = [("pipeline", [f"{r['plugin']}.{r['pipeline']}" for r in runs]), ("status", [r["status"] for r in runs])]
        rows += [(f"config: {k}", [json.dumps(r["config"].get(k)) for r in runs]) for k in self.differing]
        rows += [(f"metric: {k}", [f"{m[k]:.6g}" if k in m else "" for m in metrics]) for k in metric_keys]
        self.table = QTableWidget(len(rows), len(runs))
        self.table.setHorizontalHeaderLabels([r["id"] for r in runs])
        self.table.setVerticalHeaderLabels([name for name, _ in rows])
        for i, (_, values) in enumerate(rows):
            for j, value in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.curves = CurvesWidget(title="metrics of the selected runs")
        for r in runs:
            for key in metric_keys:
                pts = store.metrics(r["id"], key)
                if pts:
                    self.curves.set_series(f"{r['id'][-6:]} {key}", [p["step"] for p in pts], [p["value"] for p in pts])
        self.curves.redraw()
        note = QLabel(f"{len(self.differing)} config key(s) differ: {', '.join(self.differing) or 'none'}")
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.curves)
        layout.addWidget(split)
