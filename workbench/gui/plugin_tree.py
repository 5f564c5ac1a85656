"""Left pane: the plugins and their pipelines. Planned pipelines are greyed ("not built yet");
a broken plugin is shown in red with its error, and its traceback is one click away."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from .messages import RED, DetailDialog

GREY = "#8a8f98"


class PluginTree(QTreeWidget):
    pipeline_selected = Signal(str, str)  # plugin name, pipeline id
    flow_selected = Signal(str, str)  # plugin name, pipeline id of a guided flow

    def __init__(self, results, parent=None):
        super().__init__(parent)
        self.results = list(results)
        self.setHeaderLabel("Plugins")
        self.setObjectName("pluginTree")
        self.setUniformRowHeights(True)
        self.itemClicked.connect(self._clicked)
        self.itemActivated.connect(self._clicked)
        self.dialog: DetailDialog | None = None
        self._fill()

    def _fill(self) -> None:
        bold = QFont()
        bold.setBold(True)
        for result in self.results:
            plugin = result.plugin
            if plugin is None:
                top = QTreeWidgetItem([f"{result.name} (broken)"])
                top.setFont(0, bold)
                top.setForeground(0, QBrush(QColor(RED)))
                top.setToolTip(0, f"{result.error}\n\nClick for the details.")
                top.setData(0, Qt.UserRole, ("broken", result.name))
                error = result.error.splitlines()[0] if result.error else "failed to load"
                child = QTreeWidgetItem([error if len(error) <= 70 else error[:69] + "…"])
                child.setForeground(0, QBrush(QColor(RED)))
                child.setToolTip(0, f"{result.error}\n\nClick for the details.")
                child.setData(0, Qt.UserRole, ("broken", result.name))
                top.addChild(child)
                self.addTopLevelItem(top)
                top.setExpanded(True)
                continue
            top = QTreeWidgetItem([plugin.title])
            top.setFont(0, bold)
            top.setToolTip(0, f"{plugin.name} {plugin.version}\n{plugin.description}".strip())
            top.setData(0, Qt.UserRole, ("plugin", plugin.name))
            self.addTopLevelItem(top)
            for flow in getattr(plugin, "flows", []):  # guided flows first: where a newcomer starts
                spec = plugin.pipeline(flow.pipeline)
                item = QTreeWidgetItem([f"▶ Guided: {flow.title or spec.title}"])
                item.setData(0, Qt.UserRole, ("flow", plugin.name, flow.pipeline))
                item.setToolTip(0, f"Step by step: {' → '.join(s.display_title for s in flow.steps)}")
                item.setForeground(0, QBrush(QColor("#1f6feb")))
                top.addChild(item)
            for spec in plugin.pipelines:
                ready = spec.status == "ready"
                item = QTreeWidgetItem([spec.title if ready else f"{spec.title} — not built yet"])
                item.setData(0, Qt.UserRole, ("pipeline", plugin.name, spec.id))
                tip = f"{plugin.name}.{spec.id}\n{spec.description}".strip()
                item.setToolTip(0, tip if ready else tip + "\n(planned: declared, not built yet)")
                if not ready:
                    item.setForeground(0, QBrush(QColor(GREY)))
                    italic = QFont()
                    italic.setItalic(True)
                    item.setFont(0, italic)
                top.addChild(item)
            top.setExpanded(True)

    # -- lookups (tests, main window) ---------------------------------------------------
    def labels(self) -> list[str]:
        out = []
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            out.append(top.text(0))
            out += [top.child(j).text(0) for j in range(top.childCount())]
        return out

    def item_for(self, plugin_name: str, pipeline_id: str | None = None) -> QTreeWidgetItem | None:
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            data = top.data(0, Qt.UserRole)
            if data[1] != plugin_name:
                continue
            if pipeline_id is None:
                return top
            for j in range(top.childCount()):
                child = top.child(j)
                if child.data(0, Qt.UserRole) == ("pipeline", plugin_name, pipeline_id):
                    return child
        return None

    # -- clicks ------------------------------------------------------------------------
    def _clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        data = item.data(0, Qt.UserRole)
        if not data:
            return
        if data[0] == "broken":
            self.show_broken(data[1])
        elif data[0] == "pipeline":
            self.pipeline_selected.emit(data[1], data[2])
        elif data[0] == "flow":
            self.flow_selected.emit(data[1], data[2])

    def show_broken(self, name: str) -> DetailDialog:
        result = next(r for r in self.results if r.name == name)
        source = f" (from {result.source}: {result.target})" if result.target else ""
        message = f"The plugin '{name}'{source} could not be loaded; the other plugins work. {result.error}"
        self.dialog = DetailDialog(f"Plugin {name} is broken", message, result.detail or result.error, self.window())
        self.dialog.open()
        return self.dialog
