"""The pages of a guided flow: a choice step (settings + live preview), Distill and Inspect.

A step page hosts the rows of the flow's one `ConfigForm` that its step owns (the form stays
the single model and validator; its widgets are only placed on different pages). A choice
step previews what the current settings mean, off the GUI thread, whenever it is shown or its
settings change (debounced); the preview is cached by the whole config, so going back and
forth costs nothing.
"""
from __future__ import annotations

import json
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QScrollArea, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget, QHeaderView)

from workbench.api import Preview, StepSpec, WorkbenchError, human_bytes, human_count

from .flow_preview import PreviewRunner, PreviewView
from .flow_worker import worker
from .job_panel import JobPanel
from .messages import ErrorLine, esc, fmt_value

HINT = "color: #6b7280;"


def header(title: str, description: str) -> QLabel:
    label = QLabel(f"<h2 style='margin:0'>{esc(title)}</h2>"
                   + (f"<p style='color:#444; margin-top:4px'>{esc(description)}</p>" if description else ""))
    label.setWordWrap(True)
    label.setObjectName("stepHeader")
    return label


def form_box(rows: list[tuple[QWidget, QWidget]]) -> QWidget:
    box = QWidget()
    box.setObjectName("stepForm")
    layout = QFormLayout(box)
    layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
    layout.setVerticalSpacing(6)
    layout.setContentsMargins(0, 0, 0, 0)
    for label, holder in rows:
        layout.addRow(label, holder)
    return box


def scrolled(widget: QWidget, name: str = "formScroll") -> QScrollArea:
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    return area


class ChoiceStep(QWidget):
    """Teacher / data / sampling / student: the step's settings on the left, the preview on the right."""

    previewed = Signal(str)  # step kind, when a preview was shown

    def __init__(self, page, step: StepSpec, rows: list[tuple[QWidget, QWidget]], parent=None):
        super().__init__(parent)
        self.page, self.step = page, step
        self.kind = step.kind
        self.fields = list(step.fields)
        self.active = False
        self.cache_key = ""  # the config the shown preview belongs to
        self._unshown: Preview | None = None
        self.runner = (PreviewRunner(page.session.home, page.plugin, page.spec.id, step.preview, self)
                       if step.preview else None)
        if self.runner is not None:
            self.runner.finished.connect(self._finished, Qt.QueuedConnection)
        self.view = PreviewView()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(6)
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)
        self.refresh_button = QPushButton("Refresh preview")
        self.refresh_button.setObjectName("refreshPreview")
        self.refresh_button.setToolTip("Compute the preview again (F5)")
        self.refresh_button.clicked.connect(lambda: self.refresh(force=True))
        self.refresh_button.setVisible(self.runner is not None)
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(600)
        self.debounce.timeout.connect(self.refresh)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(12, 8, 8, 8)
        lv.addWidget(header(step.display_title, step.description))
        if rows:
            lv.addWidget(QLabel("<b>Your choice</b>"))
            lv.addWidget(scrolled(form_box(rows)), 1)
        else:
            note = QLabel("Nothing to set in this step.")
            note.setStyleSheet(HINT)
            lv.addWidget(note)
            lv.addStretch(1)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(4, 8, 8, 8)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>What this means</b>"))
        head.addStretch(1)
        head.addWidget(self.refresh_button)
        rv.addLayout(head)
        rv.addWidget(self.busy)
        holder = QWidget()
        hv = QVBoxLayout(holder)
        hv.setContentsMargins(0, 0, 0, 0)
        hv.addWidget(self.view)
        rv.addWidget(scrolled(holder, "previewScroll"), 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([380, 820] if rows else [260, 940])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        if self.runner is None:
            self.view.clear("This step has no preview; its settings are used when the run starts.")

    # -- driven by the flow page ------------------------------------------------------------
    def activate(self) -> None:
        self.active = True
        if self._unshown is not None:  # arrived while another step was shown: render it now
            preview, self._unshown = self._unshown, None
            self.view.show_preview(preview)
        self.refresh()

    def deactivate(self) -> None:
        self.active = False
        self.debounce.stop()
        if self.runner is not None and self.runner.busy:  # the worker turns to the step now shown
            self.runner.stop()
            self.cache_key = ""  # computed again when this step is shown again
            self.busy.setVisible(False)
            if self.view.preview is None:
                self.view.clear("")

    def config_changed(self) -> None:
        if self.active and self.runner is not None:
            self.debounce.start()

    def refresh(self, force: bool = False) -> None:
        if self.runner is None:
            return
        config = self.page.form.config
        if config is None:
            self.runner.stop()
            self.busy.setVisible(False)
            self.view.clear("Fix the settings marked in red to see the preview.")
            return
        key = config.model_dump_json()
        if key == self.cache_key and not force:
            return
        self.cache_key = key
        self.busy.setVisible(True)
        if self.view.preview is None:
            self.view.clear("Computing the preview…")
        else:
            self.view.show_note("Updating the preview…")
        self.runner.request(config)

    @property
    def computing(self) -> bool:
        return self.runner is not None and self.runner.busy

    def _finished(self, generation: int, preview: Preview | None, error: str, detail: str) -> None:
        if not self.runner.accept(generation):
            return
        self.busy.setVisible(False)
        if preview is None:
            self.cache_key = ""  # try again next time
            self._unshown = None
            self.view.show_error(error, detail)
        elif self.active:
            self.view.show_preview(preview)
        else:  # building plots for a hidden page costs the event loop for nothing: wait until shown
            self._unshown = preview
        self.previewed.emit(self.kind)

    @property
    def preview(self) -> Preview | None:
        """The newest preview, shown or waiting to be shown."""
        return self._unshown if self._unshown is not None else self.view.preview


def is_loss_key(key: str) -> bool:
    k = key.lower()
    return "loss" in k or "mse" in k


class FlowJobPanel(JobPanel):
    """The job panel, plus resuming an interrupted or cancelled run through the same bridge, and
    the curves split in two: losses (training and validation) on top, every other metric below
    (accuracies, pass rates, learning rates and gradient norms live on other scales)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        from workbench.viewkit import CurvesWidget

        self.curves.setTitle("losses", color="#333", size="11pt")
        self.other_curves = CurvesWidget(title="other metrics")
        self.other_curves.setMinimumHeight(160)
        self.other_curves.setVisible(False)  # shown when a metric other than a loss arrives
        losses_add, losses_clear, other = self.curves.add_point, self.curves.clear_all, self.other_curves

        def add_point(key: str, step: float, value: float) -> None:
            if is_loss_key(key):
                losses_add(key, step, value)
            else:
                if not other.isVisibleTo(self.curves_box):
                    other.setVisible(True)
                other.add_point(key, step, value)

        def clear_all() -> None:
            losses_clear()
            other.clear_all()

        # the base panel feeds `curves`; routing here keeps its event handling untouched
        self.curves.add_point, self.curves.clear_all = add_point, clear_all
        self._redraw.timeout.connect(self.other_curves.redraw)
        self.run_finished.connect(lambda *_: self.other_curves.redraw())
        self.curves_box.layout().insertWidget(1, self.other_curves, 1)

    def resume_run(self, run_id: str) -> None:
        if self.running or self.starting:
            return
        self.error_line.clear()
        self.starting = True
        self.job, self.run_id = None, ""
        self._early = []
        self.last_progress = None
        self.eta.reset()
        self.curves.clear_all()
        for row in self.session.store.metrics(run_id):  # the curves so far (the engine drops steps past the checkpoint)
            self.curves.add_point(row["key"], row["step"], row["value"])
        self.show_button.setVisible(False)
        self._set_status(f"resuming run {run_id}…", "queued")
        self._update_buttons()
        engine, plugin, bridge = self.session.engine, self.plugin, self.bridge

        def submit() -> None:  # not the UI thread
            try:
                job = engine.resume(plugin, run_id, listener=bridge)
            except WorkbenchError as exc:
                result = (None, str(exc), "")
            except Exception as exc:  # noqa: BLE001
                result = (None, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            else:
                result = (job, "", "")
            try:
                bridge.submitted.emit(*result)
            except RuntimeError:
                pass

        threading.Thread(target=submit, name="workbench-resume", daemon=True).start()


RESUMABLE_STATES = ("cancelled", "interrupted", "failed")


class DistillStep(QWidget):
    """The run: recap of the choices, training settings, device, Run/Cancel/Resume, progress, ETA, curves."""

    def __init__(self, page, step: StepSpec, rows, more_rows, parent=None):
        super().__init__(parent)
        self.page, self.step, self.kind = page, step, step.kind
        self.fields = list(step.fields)
        self.jobs = FlowJobPanel(page.session, page.plugin, page.spec, page.form)
        self.recap = QLabel()
        self.recap.setObjectName("flowRecap")
        self.recap.setWordWrap(True)
        self.recap.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.device_label = QLabel("device: checking…")
        self.device_label.setObjectName("deviceLabel")
        self.device_label.setWordWrap(True)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("resumeButton")
        self.resume_button.setVisible(False)
        self.resume_button.clicked.connect(self.resume)
        self.resume_label = QLabel()
        self.resume_label.setStyleSheet(HINT)
        self.resume_label.setWordWrap(True)
        self.resumable_run = ""
        self.cuda: bool | None = None

        settings = QWidget()
        sv = QVBoxLayout(settings)
        sv.setContentsMargins(0, 0, 0, 0)
        if rows:
            sv.addWidget(form_box(rows))
        if more_rows:
            more = QGroupBox("More settings")
            more.setObjectName("moreSettings")
            mv = QVBoxLayout(more)
            mv.addWidget(form_box(more_rows))
            sv.addWidget(more)
        sv.addStretch(1)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(12, 8, 8, 8)
        lv.addWidget(header(step.display_title, step.description or
                            "Train the student with the choices above; the run goes on in a worker process."))
        lv.addWidget(self.recap)
        lv.addWidget(QLabel("<b>Training settings</b>"))
        lv.addWidget(scrolled(settings), 1)
        lv.addWidget(self.device_label)
        lv.addWidget(page.form.error)  # the summary validation message, always in view above Run
        lv.addWidget(self.jobs)
        resume_row = QHBoxLayout()
        resume_row.addWidget(self.resume_label, 1)
        resume_row.addWidget(self.resume_button)
        lv.addLayout(resume_row)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(4, 8, 8, 8)
        rv.addWidget(QLabel("<b>Live curves</b> (training and validation losses; other metrics below)"))
        rv.addWidget(self.jobs.curves_box, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([470, 650])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        # two lines, always: a status that wrapped to one line more or less re-laid out (and repainted)
        # the whole column a dozen times a second while a run streamed its progress
        metrics = self.jobs.status.fontMetrics()
        self.jobs.status.setFixedHeight(2 * metrics.lineSpacing() + 4)
        self.jobs.status.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.jobs.run_finished.connect(lambda *_: self.update_resume())
        page.form.changed.connect(self.update_device)
        self._probe_cuda()
        self.update_resume()

    def activate(self) -> None:
        self.update_recap()
        self.update_device()
        self.update_resume()

    def deactivate(self) -> None:
        pass

    def config_changed(self) -> None:
        pass

    # -- recap and device -----------------------------------------------------------------
    def update_recap(self) -> None:
        data = self.page.form.data()
        parts = []
        for step in self.page.flow.steps:
            if step.kind in ("distill", "inspect") or not step.fields:
                continue
            values = ", ".join(f"{f} <b>{esc(_short(data.get(f)))}</b>" for f in step.fields)
            parts.append(f"<tr><td style='color:#6b7280; padding-right:10px'>{esc(step.display_title)}</td>"
                         f"<td>{values}</td></tr>")
        self.recap.setText("<table cellspacing='0' cellpadding='2'>" + "".join(parts) + "</table>" if parts else "")

    def _probe_cuda(self) -> None:
        """Whether CUDA is there, asked of the flow worker (importing torch here would stall the window)."""
        bridge = self.page.bridge

        def done(name, error: str, _detail: str) -> None:  # reader thread
            try:
                bridge.cuda_probed.emit(name or "")
            except RuntimeError:
                pass

        bridge.cuda_probed.connect(self._cuda_probed, Qt.QueuedConnection)
        worker().submit("cuda", {"plugin": self.page.plugin, "home": str(self.page.session.home)}, done)

    def _cuda_probed(self, name: str) -> None:
        self.cuda = bool(name)
        self.cuda_name = name
        self.update_device()

    def update_device(self) -> None:
        data = self.page.form.data()
        chosen = str(data.get("device", "auto") or "auto")
        if self.cuda is None:
            there = "checking for a GPU…"
        elif self.cuda:
            there = f"GPU found: {self.cuda_name}"
        else:
            there = "no CUDA GPU on this machine"
        if chosen == "auto":
            runs_on = "…" if self.cuda is None else ("GPU (cuda)" if self.cuda else "CPU")
        else:
            runs_on = "GPU (" + chosen + ")" if chosen.startswith("cuda") else "CPU"
        warn = ""
        if chosen.startswith("cuda") and self.cuda is False:
            warn = " <span style='color:#b00020'>— the run will fail: no GPU here; choose auto or cpu</span>"
        self.device_label.setText(f"<b>Device:</b> {esc(chosen)} → runs on <b>{esc(runs_on)}</b> "
                                  f"<span style='color:#6b7280'>({esc(there)})</span>{warn}")

    # -- resume ----------------------------------------------------------------------------
    def update_resume(self) -> None:
        self.resumable_run = ""
        if self.page.spec.resumable and not self.jobs.running and not self.jobs.starting:
            store = self.page.session.store
            runs = [r for r in store.list_runs(plugin=self.page.plugin.name, limit=50)
                    if r["pipeline"] == self.page.spec.id]
            latest = runs[0] if runs else None
            if latest is not None and latest["status"] in RESUMABLE_STATES:
                self.resumable_run = latest["id"]
                when = latest["status"]
                last = store.last_metrics(latest["id"])
                done = f", last {', '.join(f'{k} {fmt_value(v)}' for k, v in list(last.items())[:2])}" if last else ""
                self.resume_label.setText(f"Run {latest['id']} was {when}{done}: it can continue from its last "
                                          "checkpoint.")
        self.resume_button.setVisible(bool(self.resumable_run))
        self.resume_button.setEnabled(bool(self.resumable_run))
        self.resume_label.setVisible(bool(self.resumable_run))

    def resume(self) -> None:
        if self.resumable_run:
            run_id = self.resumable_run
            self.resume_button.setEnabled(False)
            self.jobs.resume_run(run_id)


def _short(value) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    if text == "":
        text = "(default)"
    return text if len(text) <= 48 else "…" + text[-47:]


PROFILE_COLUMNS = [("parameters", "parameters", lambda v: f"{v:,.0f}"),
                   ("storage_bytes", "storage", None), ("activation_peak_bytes", "activation memory", None),
                   ("macs", "MACs", lambda v: human_count(v)),
                   ("latency_median_ms", "latency (median)", lambda v: f"{v:.2f} ms"),
                   ("latency_p90_ms", "latency (p90)", lambda v: f"{v:.2f} ms")]


class InspectStep(QWidget):
    """A finished run: the plugin's views, the footprint/latency table teacher vs student, export."""

    show_run_requested = Signal(str)
    profiled = Signal(str, object, str, str)  # run id, profiles, error, detail (from a thread)
    exported = Signal(str, str, str)  # message, error, detail (from a thread)
    card_written = Signal(str, str, str)  # path, error, detail (from a thread)

    def __init__(self, page, step: StepSpec, parent=None):
        super().__init__(parent)
        from .run_detail import RunDetail

        self.page, self.step, self.kind = page, step, step.kind
        self.fields = list(step.fields)
        self.run_id = ""
        self.active = False
        self._pending_run = ""
        self.profiles: dict[str, dict] = {}
        self.run_combo = QComboBox()
        self.run_combo.setObjectName("inspectRun")
        self.run_combo.currentIndexChanged.connect(self._combo_changed)
        self.detail = RunDetail(page.session)
        self.table = QTableWidget(0, len(PROFILE_COLUMNS) + 1)
        self.table.setObjectName("footprintTable")
        self.table.setHorizontalHeaderLabels(["model"] + [title for _, title, _ in PROFILE_COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + 3 * 24 + 16)
        self.profile_note = QLabel()
        self.profile_note.setStyleSheet(HINT)
        self.profile_note.setWordWrap(True)
        self.measure_button = QPushButton("Measure footprint && latency")
        self.measure_button.setObjectName("measureButton")
        self.measure_button.clicked.connect(self.measure)
        self.onnx_button = QPushButton("Export ONNX")
        self.onnx_button.setObjectName("exportOnnx")
        self.onnx_button.clicked.connect(lambda: self.export("onnx"))
        self.ts_button = QPushButton("Export TorchScript")
        self.ts_button.setObjectName("exportTorchscript")
        self.ts_button.clicked.connect(lambda: self.export("torchscript"))
        self.card_button = QPushButton("Export run card…")
        self.card_button.setObjectName("exportRunCard")
        self.card_button.setToolTip("A self-contained HTML report of the run: the QA record")
        self.card_button.clicked.connect(self.export_card_dialog)
        self.runs_button = QPushButton("Show in Runs")
        self.runs_button.clicked.connect(lambda: self.show_run_requested.emit(self.run_id))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_line = ErrorLine()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(6)
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)
        self.profiled.connect(self._profiled, Qt.QueuedConnection)
        self.exported.connect(self._exported, Qt.QueuedConnection)
        self.card_written.connect(self._card_written, Qt.QueuedConnection)
        self.last_export = ""

        top = QHBoxLayout()
        top.addWidget(QLabel("Run:"))
        top.addWidget(self.run_combo, 1)
        top.addWidget(self.runs_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.measure_button)
        buttons.addStretch(1)
        buttons.addWidget(self.onnx_button)
        buttons.addWidget(self.ts_button)
        buttons.addWidget(self.card_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addWidget(header(step.display_title, step.description or
                                "What the student learned and what it costs, next to the teacher."))
        layout.addLayout(top)
        layout.addWidget(self.detail, 1)
        layout.addWidget(QLabel("<b>Footprint and latency</b> (measured on this machine, CPU)"))
        layout.addWidget(self.busy)
        layout.addWidget(self.table)
        layout.addWidget(self.profile_note)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.error_line)
        self.reload_runs()

    def config_changed(self) -> None:
        pass

    def deactivate(self) -> None:
        self.active = False

    def activate(self) -> None:
        self.active = True
        self.reload_runs(self._pending_run or self.run_id)
        self._pending_run = ""

    # -- runs ------------------------------------------------------------------------------
    def completed_runs(self) -> list[dict]:
        store = self.page.session.store
        return [r for r in store.list_runs(plugin=self.page.plugin.name, status="completed", limit=200)
                if r["pipeline"] == self.page.spec.id]

    def reload_runs(self, select: str = "") -> None:
        runs = self.completed_runs()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for r in runs:
            last = self.page.session.store.last_metrics(r["id"])
            metric = ", ".join(f"{k} {fmt_value(v)}" for k, v in list(last.items())[:2])
            self.run_combo.addItem(f"{r['id']}" + (f" — {metric}" if metric else ""), r["id"])
        self.run_combo.blockSignals(False)
        target = select or (runs[0]["id"] if runs else "")
        index = self.run_combo.findData(target)
        if index >= 0:
            self.run_combo.setCurrentIndex(index)
        self._set_enabled(bool(runs))
        if not runs:
            self.status.setText("No completed run of this pipeline yet: run one in the Distill step.")
            return
        if not self.active:  # build the plugin's views when Inspect is shown, not behind the user's back
            self._pending_run = self.run_combo.currentData()
            return
        if self.run_combo.currentData() != self.run_id:
            self.show_run(self.run_combo.currentData())

    def _combo_changed(self, _index: int) -> None:
        run_id = self.run_combo.currentData()
        if run_id and run_id != self.run_id and self.active:
            self.show_run(run_id)

    def _set_enabled(self, on: bool) -> None:
        target = self.page.plugin.profile_target(self.page.spec.id)
        for b in (self.measure_button, self.onnx_button, self.ts_button):
            b.setEnabled(on and target is not None)
        self.card_button.setEnabled(on)
        self.runs_button.setEnabled(on)

    def show_run(self, run_id: str) -> None:
        self.run_id = run_id
        self.error_line.clear()
        self.status.setText("")
        self.detail.show_run(run_id)
        # open the plugin's first view: that is what the user came to see
        if self.detail.count() > 1:
            self.detail.setCurrentIndex(1)
        self.profiles = self.stored_profiles(run_id)
        self.fill_table()
        target = self.page.plugin.profile_target(self.page.spec.id)
        if target is None:
            self.profile_note.setText("This pipeline declares no models to profile or export.")
        elif not self.profiles:
            self.measure()

    def stored_profiles(self, run_id: str) -> dict[str, dict]:
        """Profiles measured earlier (kept as evaluations by the session)."""
        out: dict[str, dict] = {}
        for e in self.page.session.store.evaluations(run_id):
            if str(e.get("criteria", "")).startswith("profile "):
                out.setdefault(e["subject"], {"device": e["criteria"][8:]})[e["metric"]] = e["value"]
        return out

    # -- footprint -------------------------------------------------------------------------
    def measure(self) -> None:
        if not self.run_id or self.busy.isVisible():
            return
        self.busy.setVisible(True)
        self.measure_button.setEnabled(False)
        self.profile_note.setText("Measuring size, activation memory, MACs and latency (CPU)…")
        run_id, signal = self.run_id, self.profiled

        def done(profiles, error: str, detail: str) -> None:  # reader thread
            try:
                signal.emit(run_id, profiles, error, detail)
            except RuntimeError:
                pass

        worker().submit("profile", self._payload(), done)

    def _payload(self, **extra) -> dict:
        return {"plugin": self.page.plugin, "home": str(self.page.session.home), "run_id": self.run_id, **extra}

    def _profiled(self, run_id: str, profiles, error: str, detail: str) -> None:
        self.busy.setVisible(False)
        self.measure_button.setEnabled(True)
        if run_id != self.run_id:
            return
        if profiles is None:
            self.profile_note.setText("")
            self.error_line.show_error(f"Could not measure the models: {error}", detail, title="Profiling failed")
            return
        self.profiles = profiles
        self.fill_table()

    def fill_table(self) -> None:
        names = list(self.profiles)
        rows = names + (["teacher / student"] if "teacher" in names and "student" in names else [])
        self.table.setRowCount(len(rows))
        for r, name in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(name))
            for c, (key, _title, fmt) in enumerate(PROFILE_COLUMNS, start=1):
                if name == "teacher / student":
                    t, s = self.profiles["teacher"].get(key), self.profiles["student"].get(key)
                    text = f"{float(t) / float(s):.1f}×" if t and s else "-"
                else:
                    v = self.profiles[name].get(key)
                    text = "-" if v is None else (fmt(v) if fmt else human_bytes(v))
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        if names:
            threads = next((p.get("threads") for p in self.profiles.values() if p.get("threads")), None)
            self.profile_note.setText(
                "Storage: the safetensors size; activation memory: peak bytes of tensors alive in one forward pass; "
                "latency: " + (f"median and 90th percentile of timed passes with {threads} thread(s)" if threads else
                               "median and 90th percentile of timed passes") + ".")
        elif self.page.plugin.profile_target(self.page.spec.id) is not None:
            self.profile_note.setText("Not measured yet.")

    # -- export ----------------------------------------------------------------------------
    def export(self, fmt: str) -> None:
        if not self.run_id:
            return
        self.busy.setVisible(True)
        self.status.setText(f"exporting {fmt}…")
        signal = self.exported

        def done(result, error: str, detail: str) -> None:  # reader thread
            message = ""
            if result is not None:
                diff = result.get("max_abs_diff")
                message = (f"Exported {result['model']} as {fmt}: {result['path']} ({result['bytes']:,d} bytes"
                           + (f"; max |difference| to PyTorch {diff:.2e}" if diff is not None else "") + ")")
            try:
                signal.emit(message, error, detail)
            except RuntimeError:
                pass

        worker().submit("export", self._payload(format=fmt), done)

    def _exported(self, message: str, error: str, detail: str) -> None:
        self.busy.setVisible(False)
        if error:
            self.status.setText("")
            self.error_line.show_error(f"Export failed: {error}", detail, title="Export failed")
        else:
            self.last_export = message
            self.status.setText(esc(message))

    def export_card_dialog(self) -> None:
        default = Path(self.page.settings.last_folder("run_card")) / f"run-card-{self.run_id}.html"
        path, _ = QFileDialog.getSaveFileName(self, "Export run card", str(default), "HTML (*.html)")
        if path:
            self.export_card(path)

    def export_card(self, path: str | Path | None = None) -> None:
        """Write the run card (in the flow worker: it renders figures); `card_written` says where."""
        if not self.run_id:
            return
        self.busy.setVisible(True)
        self.status.setText("writing the run card…")
        signal = self.card_written

        def done(out, error: str, detail: str) -> None:  # reader thread
            try:
                signal.emit(out or "", error, detail)
            except RuntimeError:
                pass

        worker().submit("card", self._payload(path=str(path) if path else None), done)

    def _card_written(self, path: str, error: str, detail: str) -> None:
        self.busy.setVisible(False)
        if error:
            self.status.setText("")
            self.error_line.show_error(f"Could not write the run card: {error}", detail, title="Run card failed")
            return
        self.page.settings.remember_folder("run_card", path)
        self.last_export = f"Run card written: {path}"
        self.status.setText(esc(self.last_export))
