"""One run's record (config, status, error, last metrics, evaluations, artifacts, log) and the
plugin's own views of its artifacts. Each view is built only when its tab is first shown, by
``load_target(factory)(run_record, artifacts, parent)``; a view that fails shows its error."""
from __future__ import annotations

import json
import time
import traceback

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QTabWidget, QTextBrowser, QVBoxLayout, QWidget

from workbench.api import load_target

from .job_panel import STATUS_COLORS, format_duration
from .messages import RED, ErrorLine, esc, fmt_value

TABLE = "<table cellspacing='0' cellpadding='3' style='border-collapse: collapse;'>{}</table>"


def _rows(rows: list[list[str]], head: list[str] | None = None) -> str:
    out = "".join(f"<th align='left' style='color:#555'>{esc(h)}</th>" for h in head or [])
    out = f"<tr>{out}</tr>" if head else ""
    for row in rows:
        out += "<tr>" + "".join(f"<td style='padding-right:14px'>{c}</td>" for c in row) + "</tr>"
    return TABLE.format(out) if rows else "<p style='color:#888'>none</p>"


def _num(value: float) -> str:
    return esc(fmt_value(value, 6))


class RunDetail(QTabWidget):
    use_config_requested = Signal(str)  # run id

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.run_id = ""
        self.summary = QTextBrowser()
        self.summary.setOpenLinks(False)
        self.summary.anchorClicked.connect(self._anchor)
        self.summary.setHtml("<p style='color:#888'>Select a run to see its record and its views.</p>")
        self.addTab(self.summary, "Record")
        self.views: dict[str, QWidget] = {}  # view id -> the built widget (or its error)
        self._pending: dict[int, tuple] = {}  # tab index -> (view spec, run, artifacts, holder)
        self._last_view_title = ""
        self.currentChanged.connect(self._tab_changed)

    # -- showing a run -------------------------------------------------------------------
    def show_run(self, run_id: str) -> None:
        keep = self.tabText(self.currentIndex()) if self.currentIndex() > 0 else ""
        self.blockSignals(True)
        while self.count() > 1:
            widget = self.widget(1)
            self.removeTab(1)
            widget.deleteLater()
        self.blockSignals(False)
        self.views, self._pending = {}, {}
        store = self.session.store
        run = store.get_run(run_id)
        self.run_id = run["id"]
        arts = store.artifacts(run["id"])
        self.summary.setHtml(self._record_html(run, arts))
        try:
            plugin = self.session.plugins.get(run["plugin"])
        except Exception as exc:  # noqa: BLE001 - the plugin may be gone or broken; the record still shows
            self.summary.append(f"<p style='color:#a15c00'>No plugin views: {esc(exc)}</p>")
            return
        kinds = {a["kind"] for a in arts}
        for view in plugin.views:
            if kinds & set(view.accepts):
                holder = QWidget()
                QVBoxLayout(holder).setContentsMargins(0, 0, 0, 0)
                index = self.addTab(holder, view.title)
                self.setTabToolTip(index, f"{view.id}: a view of {', '.join(sorted(kinds & set(view.accepts)))}")
                self._pending[index] = (view, run, [a for a in arts if a["kind"] in view.accepts], holder)
        if keep:
            for i in range(1, self.count()):
                if self.tabText(i) == keep:
                    self.setCurrentIndex(i)  # builds it
                    return
        self.setCurrentIndex(0)

    def _tab_changed(self, index: int) -> None:
        if index in self._pending:
            self.build_view(index)

    def build_view(self, index: int) -> QWidget:
        view, run, arts, holder = self._pending.pop(index)
        try:
            widget = load_target(view.factory)(run, arts, holder)
        except Exception as exc:  # noqa: BLE001 - a broken view shows its error, never crashes the window
            box = QWidget(holder)
            col = QVBoxLayout(box)
            widget = ErrorLine(box)
            col.addWidget(widget)
            col.addStretch(1)
            holder.layout().addWidget(box)
            box.show()
            widget.show_error(f"The view '{view.title}' ({view.id}) could not be shown: {type(exc).__name__}: {exc}",
                              traceback.format_exc(), title=f"View {view.id} failed")
        else:
            holder.layout().addWidget(widget)
            widget.show()
        self.views[view.id] = widget
        return widget

    def open_view(self, view_id: str) -> QWidget | None:
        """Select a view's tab (building it); None when the run has no such view."""
        for index, (view, *_rest) in list(self._pending.items()):
            if view.id == view_id:
                self.setCurrentIndex(index)
        return self.views.get(view_id)

    # -- the record ----------------------------------------------------------------------
    def _record_html(self, run: dict, arts: list[dict]) -> str:
        store = self.session.store
        rid = run["id"]
        color = STATUS_COLORS.get(run["status"], "#333")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["created"])) if run.get("created") else ""
        head = (f"<h3 style='margin-bottom:2px'>{esc(rid)} · {esc(run['plugin'])}.{esc(run['pipeline'])} · "
                f"<span style='color:{color}'>{esc(run['status'])}</span></h3>")
        facts = [f"created {when}", f"seed {run['seed']}", f"device {esc(run['device'] or '?')}",
                 f"host {esc(run['host'])}"]
        if run.get("duration_s"):
            facts.append(f"ran {format_duration(run['duration_s'])}")
        if run.get("resumes"):
            facts.append(f"resumed {run['resumes']}×")
        if run.get("parent"):
            facts.append(f"from {esc(run['parent'])}")
        html = head + f"<p style='color:#555'>{' · '.join(facts)}<br>folder <code>{esc(self.session.run_dir(rid))}</code>"
        html += " · <a href='use-config'>use this config for a new run</a></p>"
        if run.get("error"):
            html += f"<p style='color:{RED}'><b>{esc(run['error'])}</b></p>"
        html += "<h4>Config</h4>" + _rows([[f"<code>{esc(k)}</code>", f"<code>{esc(json.dumps(v))}</code>"]
                                           for k, v in run["config"].items()])
        html += "<h4>Last metrics</h4>" + _rows([[esc(k), _num(v)] for k, v in store.last_metrics(rid).items()])
        evals = store.evaluations(rid)
        html += "<h4>Evaluations</h4>" + _rows(
            [[esc(e["subject"]), esc(e["metric"]), _num(e["value"]), esc(e["criteria"]), esc(e["case_id"])]
             for e in evals[:300]], ["subject", "metric", "value", "criteria", "case"] if evals else None)
        if len(evals) > 300:
            html += f"<p style='color:#888'>… and {len(evals) - 300} more</p>"
        html += "<h4>Artifacts</h4>" + _rows(
            [[esc(a["kind"]), f"{a['bytes']:,d} B", f"<code>{esc(a['path'])}</code>"] for a in arts],
            ["kind", "size", "path"] if arts else None)
        logs = store.logs(rid)
        lines = []
        for entry in logs[-200:]:
            c = RED if entry["level"] == "error" else "#a15c00" if entry["level"] == "warning" else "#444"
            stamp = time.strftime("%H:%M:%S", time.localtime(entry["time"]))
            lines.append(f"<span style='color:#999'>{stamp}</span> <span style='color:{c}'>{esc(entry['level'])}: "
                         f"{esc(entry['message'])}</span>")
        html += "<h4>Log</h4>" + (f"<pre style='white-space: pre-wrap'>{'<br>'.join(lines)}</pre>" if lines
                                  else "<p style='color:#888'>empty</p>")
        return html

    def _anchor(self, url) -> None:
        if url.toString() == "use-config" and self.run_id:
            self.use_config_requested.emit(self.run_id)
