"""`workbench` with no command: the desktop window."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from workbench.core.session import Session

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName("Distillation Workbench")
    window = MainWindow(Session.open())
    window.show()
    return app.exec()
