"""Main window: plugins and their pipelines on the left; the pipeline's page and the runs on the right."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QLabel, QMainWindow, QMessageBox, QSplitter, QStackedWidget, QTabWidget, QTreeWidget,
                               QTreeWidgetItem, QWidget)

from .run_page import RunPage
from .runs_view import RunsView

STYLE = """
QMainWindow, QWidget { font-size: 13px; }
QTreeWidget { background: #f6f7f9; border: none; }
QPushButton { padding: 5px 14px; }
QPushButton:default { background: #1f6feb; color: white; border-radius: 3px; }
QPushButton:disabled { background: #ccc; color: #777; }
QProgressBar { text-align: center; }
"""


class MainWindow(QMainWindow):
    def __init__(self, session):
        super().__init__()
        self.session = session
        self.setWindowTitle("Distillation Workbench")
        self.resize(1280, 800)
        self.setStyleSheet(STYLE)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabel("Plugins")
        self.tree.itemClicked.connect(self._clicked)
        self.pages = QStackedWidget()
        welcome = QLabel("<h2>Distillation Workbench</h2><p>Pick a pipeline on the left: a teacher, domain data, "
                         "a sampling strategy and a student are its settings. Runs are kept in the Runs tab.</p>")
        welcome.setWordWrap(True)
        welcome.setAlignment(Qt.AlignTop)
        self.pages.addWidget(welcome)
        self.run_pages: dict[str, RunPage] = {}
        self.runs = RunsView(session)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.pages, "Run")
        self.tabs.addTab(self.runs, "Runs")
        self.tabs.currentChanged.connect(lambda i: self.runs.refresh() if i == 1 else None)
        split = QSplitter()
        split.addWidget(self.tree)
        split.addWidget(self.tabs)
        split.setSizes([260, 1020])
        self.setCentralWidget(split)
        self._fill_tree()
        self.statusBar().showMessage(f"home: {session.home}")

    def _fill_tree(self) -> None:
        for result in self.session.plugins.results:
            top = QTreeWidgetItem([result.plugin.title if result.plugin else f"{result.name} (broken)"])
            top.setData(0, Qt.UserRole, ("plugin", result.name))
            self.tree.addTopLevelItem(top)
            if result.plugin is None:
                top.setForeground(0, QBrush(QColor("#b00020")))
                top.setToolTip(0, result.error)
                child = QTreeWidgetItem([result.error[:80]])
                child.setForeground(0, QBrush(QColor("#b00020")))
                child.setData(0, Qt.UserRole, ("broken", result.name))
                top.addChild(child)
                continue
            for spec in result.plugin.pipelines:
                label = spec.title if spec.status == "ready" else f"{spec.title} — not built yet"
                item = QTreeWidgetItem([label])
                item.setData(0, Qt.UserRole, ("pipeline", result.name, spec.id))
                item.setToolTip(0, spec.description)
                if spec.status != "ready":
                    item.setForeground(0, QBrush(QColor("#999")))
                top.addChild(item)
            top.setExpanded(True)

    def _clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        data = item.data(0, Qt.UserRole)
        if not data:
            return
        if data[0] == "broken":
            self.show_broken(data[1])
        elif data[0] == "pipeline":
            self.open_pipeline(data[1], data[2])

    def show_broken(self, name: str) -> QMessageBox:
        result = next(r for r in self.session.plugins.results if r.name == name)
        box = QMessageBox(QMessageBox.Warning, f"Plugin {name} is broken",
                          f"The plugin '{name}' could not be loaded; the others work.\n\n{result.error}", parent=self)
        box.setDetailedText(result.detail or result.error)  # the traceback, one click away
        box.open()
        return box

    def open_pipeline(self, plugin_name: str, pipeline_id: str) -> RunPage:
        key = f"{plugin_name}.{pipeline_id}"
        if key not in self.run_pages:
            plugin = self.session.plugins.get(plugin_name)
            page = RunPage(self.session, plugin, plugin.pipeline(pipeline_id))
            page.run_finished.connect(lambda *_: self.runs.refresh())
            self.run_pages[key] = page
            self.pages.addWidget(page)
        self.pages.setCurrentWidget(self.run_pages[key])
        self.tabs.setCurrentIndex(0)
        return self.run_pages[key]

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        running = [j for j in self.session.engine.jobs.values() if not j.done]
        for job in running:
            job.cancel(grace_s=5)
        super().closeEvent(event)
