"""Readable error messages with the detail (a traceback, a log) one click away."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton,
                               QVBoxLayout, QWidget)

RED = "#b00020"


def fmt_value(value: object, digits: int = 4) -> str:
    """A metric value for display: numbers to `digits` significant digits; None (NaN in SQLite) as 'nan'."""
    if value is None:
        return "nan"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return str(value)


def sort_value(value: object) -> float:
    """Sort key of a metric value: missing and NaN values last in ascending order."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("inf")
    return v if v == v else float("inf")


def esc(text: object) -> str:
    return str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class DetailDialog(QDialog):
    """The message on top, the detail below in a monospaced, selectable box, and Copy."""

    def __init__(self, title: str, message: str, detail: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(760, 460)
        head = QLabel(f"<b>{esc(message)}</b>")
        head.setWordWrap(True)
        head.setStyleSheet(f"color: {RED};")
        self.text = QPlainTextEdit(detail or message)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        copy = buttons.addButton("Copy", QDialogButtonBox.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(f"{message}\n\n{detail}"))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(head)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)


class ErrorLine(QWidget):
    """One red line saying what went wrong, and 'Details…' when there is more to see."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.label.setStyleSheet(f"color: {RED};")
        self.details_button = QPushButton("Details…")
        self.details_button.setFlat(True)
        self.details_button.setStyleSheet(f"color: {RED}; text-decoration: underline; border: none; padding: 0 4px;")
        self.details_button.clicked.connect(self.show_details)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.details_button)
        self.title, self.message, self.detail = "", "", ""
        self.dialog: DetailDialog | None = None
        self.clear()

    def show_error(self, message: str, detail: str = "", title: str = "Error") -> None:
        self.title, self.message, self.detail = title, message, detail
        self.label.setText(message)
        self.details_button.setVisible(bool(detail))
        self.setVisible(True)

    def clear(self) -> None:
        self.message = self.detail = ""
        self.label.setText("")
        self.setVisible(False)

    def show_details(self) -> DetailDialog:
        self.dialog = DetailDialog(self.title, self.message, self.detail, self.window())
        self.dialog.open()
        return self.dialog
