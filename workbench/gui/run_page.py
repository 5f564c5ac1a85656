"""One pipeline's page: its generated form, Run/Cancel, progress with ETA, live curves."""
from __future__ import annotations

import time

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QSplitter, QVBoxLayout,
                               QWidget)

from workbench.api import LogEvent, MetricEvent, Plugin, PipelineSpec, Progress, StatusEvent, WorkbenchError
from workbench.viewkit import CurvesWidget

from .bridge import EventBridge
from .config_form import ConfigForm


class RunPage(QWidget):
    run_finished = Signal(str, str)  # run id, status

    def __init__(self, session, plugin: Plugin, spec: PipelineSpec, parent=None):
        super().__init__(parent)
        self.session, self.plugin, self.spec = session, plugin, spec
        self.job = None
        self.bridge = EventBridge(self._on_event, self)
        title = QLabel(f"<h2>{spec.title}</h2><p style='color:#555'>{plugin.title} · <code>{plugin.name}.{spec.id}</code>"
                       f"<br>{spec.description}</p>")
        title.setWordWrap(True)
        self.form = ConfigForm(plugin, spec)
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.run_button.setDefault(True)
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.form.validity_changed.connect(self._update_buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("ready" if spec.status == "ready" else "this pipeline is planned but not built yet")
        self.status.setWordWrap(True)
        self.curves = CurvesWidget(title="metrics")
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(title)
        lv.addWidget(scroll, 1)
        lv.addWidget(self.form.error)
        lv.addLayout(buttons)
        lv.addWidget(self.status)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.curves)
        split.setSizes([520, 600])
        QVBoxLayout(self).addWidget(split)
        self._started = 0.0
        self._redraw = QTimer(self)
        self._redraw.setInterval(100)
        self._redraw.timeout.connect(self.curves.redraw)  # at most 10 redraws a second
        self._update_buttons()

    def _update_buttons(self, *_):
        running = self.job is not None and not self.job.done
        self.run_button.setEnabled(not running and self.form.valid and self.spec.status == "ready")
        self.cancel_button.setEnabled(running)

    def start(self) -> None:
        config = self.form.validate()
        if config is None:
            return
        try:
            self.job = self.session.engine.submit(self.plugin, self.spec, config, listener=self.bridge)
        except WorkbenchError as exc:
            self.status.setText(f"<span style='color:#b00020'>{exc}</span>")
            return
        self.curves.clear_all()
        self.progress.setValue(0)
        self._started = time.monotonic()
        self.status.setText(f"run {self.job.run_id}: starting…")
        self._redraw.start()
        self._update_buttons()

    def cancel(self) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel(grace_s=10)
            self.status.setText(f"run {self.job.run_id}: cancelling at the next step…")

    def _on_event(self, run_id: str, event: object) -> None:
        if self.job is None or run_id != self.job.run_id:
            return
        if isinstance(event, Progress):
            if event.total:
                frac = min(event.done / event.total, 1.0)
                self.progress.setValue(int(frac * 1000))
                elapsed = time.monotonic() - self._started
                eta = f", about {elapsed / frac - elapsed:.0f} s left" if frac > 0.02 else ""
                self.status.setText(f"run {run_id}: {event.phase} {frac:.0%}{eta} — {event.message}")
        elif isinstance(event, MetricEvent):
            self.curves.add_point(event.key, event.step, event.value)
        elif isinstance(event, LogEvent) and event.level != "info":
            self.status.setText(f"run {run_id}: {event.level}: {event.message}")
        elif isinstance(event, StatusEvent) and event.status in ("completed", "failed", "cancelled"):
            self._redraw.stop()
            self.curves.redraw()
            if event.status == "completed":
                self.progress.setValue(1000)
            color = {"completed": "#1b7f3b", "failed": "#b00020", "cancelled": "#a15c00"}[event.status]
            detail = f": {event.error}" if event.error else ""
            self.status.setText(f"<span style='color:{color}'>run {run_id} {event.status}{detail}</span>")
            self._update_buttons()
            self.run_finished.emit(run_id, event.status)
