"""The guided flow of a pipeline: teacher → domain data → sampling → student → distill → inspect.

Steps come from the plugin's `FlowSpec`. The left-hand list shows every step (numbered, with
a mark once its preview was seen and a red one while it has an invalid setting); the user may
go to any step at any time — nothing is committed until Run. One `ConfigForm` is the model and
validator of the whole config; each step page hosts the rows of the fields its step owns, and
fields no step claims appear under "More settings" in Distill, so no setting is ever hidden.

Keyboard: Up/Down in the step list, Alt+N / Alt+B next/back, Ctrl+1…6 jump to a step, F5
refreshes the current preview, Ctrl+Return runs (in Distill), Esc cancels a run.
"""
from __future__ import annotations

import json

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from workbench.api import FlowSpec, Plugin, PipelineSpec, Preview

from .config_form import ConfigForm
from .flow_steps import ChoiceStep, DistillStep, InspectStep
from .messages import esc
from .settings import Settings

MARK_DONE, MARK_BAD = "✓", "!"


class FlowBridge(QObject):
    """Signals emitted from helper threads of the flow page."""

    cuda_probed = Signal(str)


def take_rows(form: ConfigForm) -> dict[str, tuple[QWidget, QWidget]]:
    """Lift each field's (label, editor) pair out of the form's layout, keyed by field name.
    The form keeps its references to the editors, so it still reads and validates them."""
    layout: QFormLayout = form.layout()
    names = list(form.widgets)
    rows: dict[str, tuple[QWidget, QWidget]] = {}
    for i, name in enumerate(names):
        label = layout.itemAt(i, QFormLayout.LabelRole).widget()
        holder = layout.itemAt(i, QFormLayout.FieldRole).widget()
        rows[name] = (label, holder)
    for label, holder in rows.values():
        layout.removeWidget(label)
        layout.removeWidget(holder)
    return rows


class FlowPage(QWidget):
    run_started = Signal(str)
    run_finished = Signal(str, str)
    show_run_requested = Signal(str)

    def __init__(self, session, plugin: Plugin, spec: PipelineSpec, flow: FlowSpec, settings: Settings | None = None,
                 parent=None):
        super().__init__(parent)
        self.session, self.plugin, self.spec, self.flow = session, plugin, spec, flow
        self.settings = settings or Settings(session.home / "gui-settings.ini")
        self.key = f"{plugin.name}.{spec.id}"
        self.bridge = FlowBridge(self)
        self.form = ConfigForm(plugin, spec)
        self.form.setVisible(False)  # the model; its editors live on the step pages
        self._restore_values()
        rows = take_rows(self.form)
        self._hook_browse(rows)
        self.steps: list[QWidget] = []
        more = [rows[f] for f in flow.unclaimed(list(rows))]
        for step in flow.steps:
            own = [rows[f] for f in step.fields]
            if step.kind == "distill":
                page = DistillStep(self, step, own, more)
            elif step.kind == "inspect":
                page = InspectStep(self, step)
                page.show_run_requested.connect(self.show_run_requested)
            else:
                page = ChoiceStep(self, step, own)
                page.previewed.connect(lambda _kind: self._update_marks())
            self.steps.append(page)
        self.visited: set[str] = set()

        self.step_list = QListWidget()
        self.step_list.setObjectName("flowSteps")
        self.step_list.setFixedWidth(190)
        self.step_list.setSpacing(2)
        self.stack = QStackedWidget()
        for i, (step, page) in enumerate(zip(flow.steps, self.steps)):
            item = QListWidgetItem(f"{i + 1}  {step.display_title}")
            item.setToolTip(step.description or step.display_title)
            item.setData(Qt.UserRole, step.kind)
            self.step_list.addItem(item)
            self.stack.addWidget(page)
        self.step_list.currentRowChanged.connect(self._go)

        title = QLabel(f"<b style='font-size:15px'>{esc(flow.title or spec.title)}</b> "
                       f"<span style='color:#6b7280'>· {esc(plugin.title)} · guided</span>")
        title.setObjectName("flowTitle")
        self.back_button = QPushButton("&Back")
        self.back_button.setObjectName("flowBack")
        self.back_button.setToolTip("Previous step (Alt+B)")
        self.next_button = QPushButton("&Next")
        self.next_button.setObjectName("flowNext")
        self.next_button.setToolTip("Next step (Alt+N)")
        self.back_button.clicked.connect(lambda: self.go_to(self.current_index - 1))
        self.next_button.clicked.connect(lambda: self.go_to(self.current_index + 1))
        help_text = QLabel("Go through the steps in order or jump to any; nothing is trained until <b>Run</b> in "
                           "Distill.<br><span style='color:#6b7280'>Keys: ↑/↓ steps · Alt+N next · Alt+B back · "
                           "Ctrl+1…6 · F5 preview · Ctrl+Enter run · Esc cancel</span>")
        help_text.setWordWrap(True)
        help_text.setStyleSheet("font-size: 11px;")
        side = QWidget()
        sv = QVBoxLayout(side)
        sv.setContentsMargins(8, 8, 0, 8)
        sv.addWidget(self.step_list, 1)
        sv.addWidget(help_text)
        nav = QHBoxLayout()
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        sv.addLayout(nav)
        head = QHBoxLayout()
        head.setContentsMargins(12, 6, 12, 0)
        head.addWidget(title, 1)
        body = QWidget()
        bv = QVBoxLayout(body)
        bv.setContentsMargins(0, 0, 0, 0)
        bv.addLayout(head)
        bv.addWidget(self.stack, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(side)
        layout.addWidget(body, 1)

        self.form.changed.connect(self._config_changed)
        distill = self.distill
        if distill is not None:
            distill.jobs.run_started.connect(self._run_started)
            distill.jobs.run_finished.connect(self._run_finished)
            distill.jobs.show_run_requested.connect(self.show_run_requested)
        self._shortcuts()
        start = self.settings.flow_step(self.key)
        kinds = [s.kind for s in flow.steps]
        self.step_list.setCurrentRow(kinds.index(start) if start in kinds else 0)
        self._update_marks()

    # -- lookups (tests, benchmark, main window) -------------------------------------------
    def step_page(self, kind: str) -> QWidget | None:
        return next((p for s, p in zip(self.flow.steps, self.steps) if s.kind == kind), None)

    @property
    def distill(self) -> DistillStep | None:
        return self.step_page("distill")

    @property
    def inspect(self) -> InspectStep | None:
        return self.step_page("inspect")

    @property
    def jobs(self):
        return self.distill.jobs

    @property
    def job(self):
        return self.jobs.job

    @property
    def run_button(self):
        return self.jobs.run_button

    @property
    def cancel_button(self):
        return self.jobs.cancel_button

    @property
    def current_index(self) -> int:
        return self.step_list.currentRow()

    @property
    def current_kind(self) -> str:
        return self.flow.steps[self.current_index].kind

    # -- navigation ----------------------------------------------------------------------------
    def go_to(self, index_or_kind) -> None:
        if isinstance(index_or_kind, str):
            index_or_kind = [s.kind for s in self.flow.steps].index(index_or_kind)
        if 0 <= index_or_kind < len(self.steps):
            self.step_list.setCurrentRow(index_or_kind)

    def _go(self, index: int) -> None:
        if index < 0:
            return
        for i, page in enumerate(self.steps):
            if i != index:
                page.deactivate()
        self.stack.setCurrentIndex(index)
        kind = self.flow.steps[index].kind
        self.visited.add(kind)
        self.settings.set_flow_step(self.key, kind)
        self.steps[index].activate()
        self.back_button.setEnabled(index > 0)
        self.next_button.setEnabled(index < len(self.steps) - 1)
        nxt = self.flow.steps[index + 1].display_title if index + 1 < len(self.steps) else ""
        self.next_button.setText(f"&Next: {nxt}" if nxt else "&Next")
        self._update_marks()

    def _shortcuts(self) -> None:
        def add(keys: str, slot) -> None:
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        for i in range(min(len(self.steps), 9)):
            add(f"Ctrl+{i + 1}", lambda i=i: self.go_to(i))
        add("F5", self._refresh_current)
        add("Ctrl+Return", self._run_shortcut)
        add("Ctrl+Enter", self._run_shortcut)
        add("Escape", self._cancel_shortcut)

    def _refresh_current(self) -> None:
        page = self.steps[self.current_index]
        if isinstance(page, ChoiceStep):
            page.refresh(force=True)

    def _run_shortcut(self) -> None:
        if self.current_kind == "distill" and self.run_button.isEnabled():
            self.run_button.click()

    def _cancel_shortcut(self) -> None:
        if self.cancel_button.isEnabled():
            self.cancel_button.click()

    # -- state ---------------------------------------------------------------------------------
    def _config_changed(self) -> None:
        for page in self.steps:
            page.config_changed()
        self._update_marks()
        if self.form.config is not None:
            self.settings.set_flow_values(self.key, self.form.config.model_dump(mode="json"))

    def _update_marks(self) -> None:
        bad = self.form.field_messages(self.form.message) if self.form.message else {}
        for i, (step, page) in enumerate(zip(self.flow.steps, self.steps)):
            item = self.step_list.item(i)
            fields = list(step.fields) + (self.flow.unclaimed(list(self.form.widgets)) if step.kind == "distill" else [])
            invalid = any(f in bad for f in fields)
            seen = step.kind in self.visited and (not isinstance(page, ChoiceStep) or page.preview is not None
                                                  or page.runner is None)
            if step.kind == "inspect":
                seen = bool(page.run_id or page._pending_run)
            mark = f"  {MARK_BAD}" if invalid else (f"  {MARK_DONE}" if seen else "")
            item.setText(f"{i + 1}  {step.display_title}{mark}")
            item.setForeground(Qt.red if invalid else Qt.black)

    def _restore_values(self) -> None:
        """The settings last used in this flow; the device last chosen anywhere."""
        values = self.settings.flow_values(self.key)
        if "device" in self.form.widgets and "device" not in values:
            values["device"] = self.settings.device
        if values:
            self.form.set_values(values)
            if self.form.config is None:  # stale (e.g. the plugin's config changed): start from defaults
                self.form.reset()

    def _hook_browse(self, rows) -> None:
        """Browse… buttons start in (and remember) the last folder used for that field."""
        for name, (_label, holder) in rows.items():
            button = holder.findChild(QPushButton, f"browse_{name}")
            edit = self.form.widgets.get(name)
            if button is None or not isinstance(edit, QLineEdit):
                continue
            button.clicked.disconnect()
            button.clicked.connect(lambda _=False, n=name, e=edit: self._browse(n, e))

    def _browse(self, name: str, edit: QLineEdit) -> None:
        start = edit.text() or self.settings.last_folder(name)
        if name.endswith("_dir"):
            path = QFileDialog.getExistingDirectory(self, f"Choose {name}", start)
        else:
            path = QFileDialog.getOpenFileName(self, f"Choose {name}", start)[0]
        if path:
            edit.setText(path)
            self.settings.remember_folder(name, path)

    # -- runs ----------------------------------------------------------------------------------
    def _run_started(self, run_id: str) -> None:
        if self.form.config is not None and "device" in self.form.widgets:
            self.settings.device = str(self.form.data().get("device") or "auto")
        self.save_previews(run_id)
        self.run_started.emit(run_id)

    def _run_finished(self, run_id: str, status: str) -> None:
        self.run_finished.emit(run_id, status)
        if status == "completed" and self.inspect is not None:
            self.inspect.reload_runs(run_id)
            self._update_marks()

    def previews(self) -> dict[str, Preview]:
        return {s.kind: p.preview for s, p in zip(self.flow.steps, self.steps)
                if isinstance(p, ChoiceStep) and p.preview is not None}

    def save_previews(self, run_id: str) -> None:
        """What the user saw before committing goes with the run (the run card shows it)."""
        from workbench.core.report import previews_to_json

        previews = self.previews()
        if not previews:
            return
        path = self.session.run_dir(run_id) / "flow_previews.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(previews_to_json(previews)), encoding="utf-8")
        except OSError as exc:  # the run goes on; only the card loses its data summary
            self.distill.jobs.error_line.show_error(f"could not save the step previews with the run: {exc}")
