"""`workbench` with no command: the desktop window."""
from __future__ import annotations

import sys
import traceback


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from workbench.core.session import Session

    from . import theme
    from .main_window import MainWindow
    from .messages import DetailDialog

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName("Distillation Workbench")
    app.setOrganizationName("distillation-workbench")
    theme.apply(app)
    try:
        session = Session.open()
    except Exception as exc:  # noqa: BLE001 - e.g. a store from a newer version: say so, do not crash
        dialog = DetailDialog("Cannot open the workbench", f"The workbench could not start: {exc}",
                              traceback.format_exc())
        dialog.exec()
        return 1
    window = MainWindow(session)
    window.settings.apply_theme(app)  # the theme chosen last time (View menu)

    def report(exc_type, exc, tb) -> None:
        """An unexpected error in a slot: one line in the status bar, the traceback one click away."""
        detail = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(detail)
        window.report_error(f"Unexpected error: {exc_type.__name__}: {exc}", detail)

    sys.excepthook = report
    window.show()
    try:
        return int(app.exec())
    finally:
        sys.excepthook = sys.__excepthook__
        session.store.close()
