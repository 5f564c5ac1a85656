"""PySide6 host: main window, generated config forms, job panel, runs table, compare view."""
