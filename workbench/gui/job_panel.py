"""Run / Cancel, progress with ETA, a status line and live metric curves for one pipeline.

Engine events arrive on the engine's reader thread. `EventBridge` is the listener: on that
thread it only appends to a buffer (collapsing consecutive progress events) and, when no
delivery is pending, emits a queued signal. On the UI thread the buffer is handed over as one
batch at most every `min_interval_ms`, so a flood of events costs the UI a few slot calls a
second; no widget is ever touched from the engine's thread, and the UI never waits on a run.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections import deque

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from workbench.api import LogEvent, MetricEvent, Plugin, PipelineSpec, Progress, StatusEvent, WorkbenchError
from workbench.viewkit import CurvesWidget

from .messages import RED, ErrorLine, esc, fmt_value

TERMINAL = ("completed", "failed", "cancelled", "interrupted")
STATUS_COLORS = {"completed": "#1b7f3b", "failed": RED, "cancelled": "#a15c00", "interrupted": "#a15c00",
                 "running": "#1f6feb", "queued": "#6b7280"}


class EventBridge(QObject):
    """Engine listener (any thread) -> `batch` signal on the UI thread, throttled."""

    batch = Signal(list)  # [(run_id, event), ...] in arrival order
    submitted = Signal(object, str, str)  # job or None, error, detail: from the thread that submits
    _wake = Signal()

    def __init__(self, parent=None, min_interval_ms: int = 50):
        super().__init__(parent)
        self.min_interval_ms = min_interval_ms
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, object]] = []
        self._pending = False
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._flush)
        self._wake.connect(self._schedule, Qt.QueuedConnection)
        self.received = 0  # events seen (for tests and the benchmark)
        self.delivered_batches = 0

    def __call__(self, run_id: str, event: object) -> None:  # the engine's thread: no Qt widgets here
        with self._lock:
            self.received += 1
            last = self._buffer[-1] if self._buffer else None
            if isinstance(event, Progress) and last is not None and last[0] == run_id and isinstance(last[1], Progress):
                self._buffer[-1] = (run_id, event)  # only the newest progress matters
            else:
                self._buffer.append((run_id, event))
            if self._pending:
                return
            self._pending = True
        self._wake.emit()

    def _schedule(self) -> None:  # UI thread
        if not self._timer.isActive():
            since = (time.monotonic() - self._last) * 1000
            self._timer.start(int(max(0, self.min_interval_ms - since)))

    def _flush(self) -> None:  # UI thread
        with self._lock:
            items, self._buffer = self._buffer, []
            self._pending = False
        self._last = time.monotonic()
        if items:
            self.delivered_batches += 1
            self.batch.emit(items)


class EtaEstimator:
    """Remaining time from the recent progress rate (the worker's start-up does not count)."""

    def __init__(self, window_s: float = 30.0):
        self.window_s = window_s
        self.samples: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        self.samples.clear()

    def update(self, now: float, done: float, total: float | None) -> float | None:
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()  # progress went back (a new phase): start over
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        if not total or len(self.samples) < 2:
            return None
        t0, d0 = self.samples[0]
        if now - t0 < 0.5 or done <= d0:
            return None
        rate = (done - d0) / (now - t0)
        return max(total - done, 0.0) / rate


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


class JobPanel(QWidget):
    """The controls of a run; `curves` is a separate widget the page places beside the form."""

    run_started = Signal(str)
    run_finished = Signal(str, str)  # run id, status
    show_run_requested = Signal(str)

    def __init__(self, session, plugin: Plugin, spec: PipelineSpec, form, parent=None):
        super().__init__(parent)
        self.session, self.plugin, self.spec, self.form = session, plugin, spec, form
        self.job = None
        self.run_id = ""
        self.status_kind = "ready"
        self.last_progress: Progress | None = None
        self.eta = EtaEstimator()
        self.bridge = EventBridge(self)
        self.bridge.batch.connect(self._on_batch)
        self.bridge.submitted.connect(self._on_submitted, Qt.QueuedConnection)
        self.starting = False
        self._early: list = []

        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.show_button = QPushButton("Show in Runs")
        self.show_button.setVisible(False)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.show_button.clicked.connect(lambda: self.show_run_requested.emit(self.run_id))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.eta_label = QLabel("")
        self.eta_label.setObjectName("etaLabel")
        self.status = QLabel("ready" if spec.status == "ready" else "This pipeline is planned but not built yet.")
        self.status.setObjectName("statusLine")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_line = ErrorLine()
        self.form.validity_changed.connect(self._update_buttons)

        self.curves = CurvesWidget(title="metrics")
        self.log_y = QCheckBox("log y")
        self.log_y.toggled.connect(self.curves.set_log_y)
        self.curves_box = QWidget()
        cv = QVBoxLayout(self.curves_box)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(self.curves, 1)
        cv.addWidget(self.log_y, 0, Qt.AlignRight)

        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.eta_label)
        status_row = QHBoxLayout()
        status_row.setContentsMargins(0, 0, 0, 0)
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.show_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addLayout(status_row)
        layout.addWidget(self.error_line)

        self._redraw = QTimer(self)
        self._redraw.setInterval(250)
        self._redraw.timeout.connect(self.curves.redraw)  # a few redraws a second, whatever the event rate
        self._update_buttons()

    # -- state ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done and self.run_id != ""

    def _update_buttons(self, *_) -> None:
        self.run_button.setEnabled(not self.running and not self.starting and self.form.valid
                                   and self.spec.status == "ready")
        self.cancel_button.setEnabled(self.running)

    # -- actions -------------------------------------------------------------------------
    def start(self) -> None:
        """Submit on a short-lived thread: validating the environment and spawning the worker
        take tens of milliseconds, which the UI thread does not wait for."""
        if self.running or self.starting:
            return
        config = self.form.validate()
        if config is None:
            return
        self.error_line.clear()
        self.starting = True
        self.job, self.run_id = None, ""
        self._early = []
        self.last_progress = None
        self.eta.reset()
        self.curves.clear_all()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.eta_label.setText("")
        self.show_button.setVisible(False)
        self._set_status("starting the worker…", "queued")
        self._update_buttons()
        engine, plugin, spec, bridge = self.session.engine, self.plugin, self.spec, self.bridge

        def submit() -> None:  # not the UI thread: no widgets here
            try:
                job = engine.submit(plugin, spec, config, listener=bridge)
            except WorkbenchError as exc:
                result = (None, str(exc), "")
            except Exception as exc:  # noqa: BLE001 - shown as a message with the traceback one click away
                result = (None, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            else:
                result = (job, "", "")
            try:
                bridge.submitted.emit(*result)
            except RuntimeError:  # the window was closed meanwhile
                pass

        threading.Thread(target=submit, name="workbench-submit", daemon=True).start()

    def _on_submitted(self, job, error: str, detail: str) -> None:
        self.starting = False
        if job is None:
            self.error_line.show_error(f"Could not start: {error}", detail, title="Run not started")
            self._set_status("not started", "failed")
            self._update_buttons()
            return
        self.job, self.run_id = job, job.run_id
        self._set_status(f"run {self.run_id}: starting the worker…", "queued")
        self._redraw.start()
        self._update_buttons()
        self.run_started.emit(self.run_id)
        early, self._early = self._early, []
        if early:
            self._on_batch(early)

    def cancel(self) -> None:
        if self.running:
            self.job.cancel(grace_s=10)
            self.cancel_button.setEnabled(False)
            self._set_status(f"run {self.run_id}: cancelling at the next step…", "cancelled")

    # -- events (UI thread) ----------------------------------------------------------------
    def _on_batch(self, items: list) -> None:
        if self.starting:  # events that overtook the news of the submission: replayed by _on_submitted
            self._early.extend(items)
            return
        progress = None
        for run_id, event in items:
            if run_id != self.run_id:
                continue
            if isinstance(event, Progress):
                progress = event
            elif isinstance(event, MetricEvent):
                self.curves.add_point(event.key, event.step, event.value)
            elif isinstance(event, LogEvent) and event.level in ("warning", "error"):
                self.error_line.show_error(f"{event.level}: {event.message}", title="Run log")
            elif isinstance(event, StatusEvent) and event.status in TERMINAL:
                if progress is not None:
                    self._show_progress(progress)
                    progress = None
                self._finished(event)
        if progress is not None:
            self._show_progress(progress)

    def _show_progress(self, event: Progress) -> None:
        self.last_progress = event
        label = " · ".join(p for p in (event.phase, event.message) if p)
        if event.total:
            frac = min(max(event.done / event.total, 0.0), 1.0)
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(frac * 1000))
            self.progress.setFormat(f"{frac:.0%}")
            eta = self.eta.update(time.monotonic(), event.done, event.total)
            self.eta_label.setText(f"about {format_duration(eta)} left" if eta is not None else "estimating…")
        else:
            self.progress.setRange(0, 0)  # busy indicator
            self.eta_label.setText("")
        if self.running:
            self._set_status(f"run {self.run_id}: {label}", "running")

    def _finished(self, event: StatusEvent) -> None:
        self._redraw.stop()
        self.curves.redraw()
        self.progress.setRange(0, 1000)
        if event.status == "completed":
            self.progress.setValue(1000)
            self.progress.setFormat("100%")
        self.eta_label.setText("")
        duration = ""
        try:
            run = self.session.store.get_run(self.run_id)
            if run.get("duration_s"):
                duration = f" in {format_duration(run['duration_s'])}"
            last = self.session.store.last_metrics(self.run_id)
        except Exception:  # noqa: BLE001 - the status line must not depend on the store answering
            last = {}
        metrics = ", ".join(f"{k} {fmt_value(v)}" for k, v in list(last.items())[:3])
        self._set_status(f"run {self.run_id} {event.status}{duration}" + (f" — {metrics}" if metrics else ""),
                         event.status)
        if event.status == "failed":
            self.error_line.show_error(event.error or "the run failed", event.detail, title=f"Run {self.run_id} failed")
        elif event.status == "cancelled" and event.error:
            self.error_line.show_error(event.error, title=f"Run {self.run_id} cancelled")
        self.show_button.setVisible(True)
        self._update_buttons()
        self.run_finished.emit(self.run_id, event.status)

    def _set_status(self, text: str, status: str) -> None:
        self.status_kind = status
        color = STATUS_COLORS.get(status, "#333")
        self.status.setText(f"<span style='color:{color}'>{esc(text)}</span>")
        self.status.setToolTip(text)
