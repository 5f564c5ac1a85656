"""Main window: plugins and their pipelines on the left; on the right a pipeline's page
(generated form, Run/Cancel, progress, live curves) and the Runs tab (table, detail, compare)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QMainWindow, QPushButton, QScrollArea, QSplitter, QStackedWidget,
                               QTabWidget, QVBoxLayout, QWidget)

from workbench.api import Plugin, PipelineSpec

from .config_form import ConfigForm
from .job_panel import JobPanel
from .messages import DetailDialog, ErrorLine, esc
from .plugin_tree import PluginTree
from .runs_view import RunsView
from .theme import STYLE

WELCOME = """
<h2 style='margin-bottom:4px'>Distillation Workbench</h2>
<p style='color:#555'>Distil a large teacher into a compact student for your domain, and see what it costs and
what it loses.</p>
<p><b>New here?</b> Start with a <b style='color:#1f6feb'>▶ Guided</b> entry on the left: it walks through
teacher → domain data → sampling → student → distill → inspect, and shows what each choice means before anything
is trained.</p>
<p>Or pick a pipeline on the left. Its settings — teacher, domain data, sampling strategy, student — form a page
with help on every field; <b>Run</b> starts it in a worker process, with progress and live curves.
Every run is kept in the <b>Runs</b> tab, where runs can be filtered, sorted, inspected and compared.</p>
"""


class PipelinePage(QWidget):
    """A pipeline's title, its generated form and its job panel; curves on the right."""

    def __init__(self, session, plugin: Plugin, spec: PipelineSpec, parent=None):
        super().__init__(parent)
        self.plugin, self.spec = plugin, spec
        planned = "" if spec.status == "ready" else " <span style='color:#a15c00'>(planned — not built yet)</span>"
        title = QLabel(f"<h2 style='margin:0'>{esc(spec.title)}{planned}</h2>"
                       f"<p style='color:#555; margin-top:2px'>{esc(plugin.title)} · <code>{plugin.name}.{spec.id}</code>"
                       + (f"<br>{esc(spec.description)}" if spec.description else "") + "</p>")
        title.setWordWrap(True)
        self.form = ConfigForm(plugin, spec)
        scroll = QScrollArea()
        scroll.setObjectName("formScroll")
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.jobs = JobPanel(session, plugin, spec, self.form)
        defaults = QPushButton("Defaults")
        defaults.setToolTip("Reset every field to its default")
        defaults.clicked.connect(self.form.reset)
        form_head = QHBoxLayout()
        form_head.addWidget(QLabel("<b>Settings</b>"))
        form_head.addStretch(1)
        form_head.addWidget(defaults)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(12, 8, 8, 8)
        lv.addWidget(title)
        lv.addLayout(form_head)
        lv.addWidget(scroll, 1)
        lv.addWidget(self.form.error)  # outside the scroll area: always in view, above Run
        lv.addWidget(self.jobs)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(4, 8, 8, 8)
        rv.addWidget(self.jobs.curves_box)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([470, 540])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # shortcuts (tests, benchmark)
    @property
    def run_button(self):
        return self.jobs.run_button

    @property
    def cancel_button(self):
        return self.jobs.cancel_button

    @property
    def progress(self):
        return self.jobs.progress

    @property
    def status(self):
        return self.jobs.status

    @property
    def curves(self):
        return self.jobs.curves

    @property
    def job(self):
        return self.jobs.job


class MainWindow(QMainWindow):
    def __init__(self, session):
        super().__init__()
        self.session = session
        self.setWindowTitle("Distillation Workbench")
        self.resize(1280, 800)
        self.setStyleSheet(STYLE)
        self.tree = PluginTree(session.plugins.results)
        self.tree.pipeline_selected.connect(self.open_pipeline)
        self.tree.flow_selected.connect(self.open_flow)
        self.flow_pages: dict = {}
        self.pages = QStackedWidget()
        welcome = QLabel(WELCOME)
        welcome.setWordWrap(True)
        welcome.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        welcome.setContentsMargins(24, 16, 24, 16)
        self.pages.addWidget(welcome)
        self.run_pages: dict[str, PipelinePage] = {}
        self.runs = RunsView(session)
        self.runs.use_config_requested.connect(self.use_config)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        self.tabs.addTab(self.pages, "Run")
        self.tabs.addTab(self.runs, "Runs")
        self.tabs.currentChanged.connect(lambda i: self.runs.refresh() if self.tabs.widget(i) is self.runs else None)
        split = QSplitter()
        split.addWidget(self.tree)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        split.setSizes([290, 990])
        self.setCentralWidget(split)
        self.dialog: DetailDialog | None = None
        broken = len(session.plugins.broken)
        note = f" · {broken} plugin{'s' if broken != 1 else ''} could not be loaded" if broken else ""
        self.statusBar().showMessage(f"{len(session.plugins.plugins)} plugins{note} · home {session.home}")
        self.error_line = ErrorLine()
        self.statusBar().addPermanentWidget(self.error_line)
        from .settings import THEMES, Settings

        self.settings = Settings(session.home / "gui-settings.ini")  # remembered: folders, device, theme, flows
        view = self.menuBar().addMenu("&View")
        for name in THEMES:
            view.addAction(f"{name.capitalize()} theme", lambda n=name: self.set_theme(n))

    def set_theme(self, name: str) -> None:
        from PySide6.QtWidgets import QApplication

        self.settings.theme = name
        self.settings.apply_theme(QApplication.instance())

    def report_error(self, message: str, detail: str = "") -> None:
        """An unexpected error: one line in the status bar, the detail one click away."""
        self.error_line.show_error(message, detail, title="Unexpected error")

    def show_broken(self, name: str) -> DetailDialog:
        return self.tree.show_broken(name)

    def open_pipeline(self, plugin_name: str, pipeline_id: str) -> PipelinePage:
        key = f"{plugin_name}.{pipeline_id}"
        if key not in self.run_pages:
            plugin = self.session.plugins.get(plugin_name)
            page = PipelinePage(self.session, plugin, plugin.pipeline(pipeline_id))
            page.jobs.run_finished.connect(self._run_finished)
            page.jobs.run_started.connect(lambda run_id: self.runs.refresh())
            page.jobs.show_run_requested.connect(self.show_run)
            self.run_pages[key] = page
            self.pages.addWidget(page)
        self.pages.setCurrentWidget(self.run_pages[key])
        self.tabs.setCurrentIndex(0)
        item = self.tree.item_for(plugin_name, pipeline_id)
        if item is not None and self.tree.currentItem() is not item:
            self.tree.setCurrentItem(item)
        return self.run_pages[key]

    def open_flow(self, plugin_name: str, pipeline_id: str):
        """The plugin's guided flow for a pipeline (teacher → data → sampling → student → distill → inspect)."""
        from .flow import FlowPage
        from .settings import Settings

        key = f"{plugin_name}.{pipeline_id}"
        if key not in self.flow_pages:
            plugin = self.session.plugins.get(plugin_name)
            settings = getattr(self, "settings", None) or Settings(self.session.home / "gui-settings.ini")
            page = FlowPage(self.session, plugin, plugin.pipeline(pipeline_id), plugin.flow(pipeline_id), settings)
            page.run_finished.connect(self._run_finished)
            page.run_started.connect(lambda run_id: self.runs.refresh())
            page.show_run_requested.connect(self.show_run)
            self.flow_pages[key] = page
            self.pages.addWidget(page)
        self.pages.setCurrentWidget(self.flow_pages[key])
        self.tabs.setCurrentIndex(0)
        return self.flow_pages[key]

    def _run_finished(self, run_id: str, status: str) -> None:
        self.runs.refresh()
        self.statusBar().showMessage(f"run {run_id} {status}", 10_000)

    def show_run(self, run_id: str) -> None:
        self.tabs.setCurrentWidget(self.runs)
        self.runs.refresh()
        self.runs.select_runs([run_id])

    def use_config(self, run_id: str) -> None:
        """Open the run's pipeline with the run's settings filled in."""
        run = self.session.store.get_run(run_id)
        try:
            page = self.open_pipeline(run["plugin"], run["pipeline"])
        except Exception as exc:  # noqa: BLE001 - e.g. the plugin is no longer installed
            self.statusBar().showMessage(f"cannot open {run['plugin']}.{run['pipeline']}: {exc}", 10_000)
            return
        page.form.set_values(run["config"])

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        for job in list(self.session.engine.jobs.values()):
            if not job.done:
                job.cancel(grace_s=5)  # never waits: the worker is stopped by the engine's own thread
        super().closeEvent(event)
