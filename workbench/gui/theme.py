"""A light theme: Fusion with a light palette (whatever the desktop's theme) and a little styling."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

ACCENT = "#1f6feb"

STYLE = f"""
QWidget {{ font-size: 13px; }}
QTreeWidget#pluginTree {{ background: #f4f6f9; border: none; padding-top: 4px; }}
QTreeWidget#pluginTree::item {{ padding: 3px 2px; }}
QTreeWidget#pluginTree::item:selected {{ background: #dbe7fb; color: #111; }}
QHeaderView::section {{ background: #eef1f5; border: none; border-right: 1px solid #dde2e8;
                        border-bottom: 1px solid #dde2e8; padding: 4px 6px; font-weight: 600; }}
QPushButton {{ padding: 5px 14px; border: 1px solid #c4cad3; border-radius: 4px; background: #fdfdfe; }}
QPushButton:hover {{ background: #eef3fb; }}
QPushButton#runButton {{ background: {ACCENT}; color: white; border-color: {ACCENT}; font-weight: 600; }}
QPushButton#runButton:hover {{ background: #1a5fd0; }}
QPushButton:disabled, QPushButton#runButton:disabled {{ background: #e3e6ea; color: #8a8f98; border-color: #d5d9df; }}
QProgressBar {{ border: 1px solid #c4cad3; border-radius: 4px; text-align: center; background: #f4f6f9;
                min-height: 18px; }}
QProgressBar::chunk {{ background: #5b9bf3; border-radius: 3px; }}
QTabWidget::pane {{ border: 1px solid #dde2e8; top: -1px; }}
QTabBar::tab {{ padding: 6px 16px; border: 1px solid #dde2e8; border-bottom: none; background: #eef1f5;
                border-top-left-radius: 4px; border-top-right-radius: 4px; margin-right: 2px; }}
QTabBar::tab:selected {{ background: white; font-weight: 600; }}
QScrollArea#formScroll {{ border: 1px solid #dde2e8; border-radius: 4px; background: white; }}
QScrollArea#formScroll > QWidget > QWidget {{ background: white; }}
QTableView {{ gridline-color: #e6e9ee; selection-background-color: #cfe0fb; selection-color: #111;
              alternate-background-color: #f8f9fb; }}
QStatusBar {{ color: #6b7280; }}
"""


def light_palette() -> QPalette:
    p = QPalette()
    colors = {
        QPalette.Window: "#fafbfc", QPalette.WindowText: "#1f2328", QPalette.Base: "#ffffff",
        QPalette.AlternateBase: "#f6f8fa", QPalette.ToolTipBase: "#ffffe8", QPalette.ToolTipText: "#1f2328",
        QPalette.Text: "#1f2328", QPalette.Button: "#f6f8fa", QPalette.ButtonText: "#1f2328",
        QPalette.Highlight: ACCENT, QPalette.HighlightedText: "#ffffff", QPalette.Link: ACCENT,
        QPalette.PlaceholderText: "#8a8f98",
    }
    for role, color in colors.items():
        p.setColor(role, QColor(color))
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor("#9aa0a8"))
    return p


def apply(app) -> None:
    app.setStyle("Fusion")
    app.setPalette(light_palette())
