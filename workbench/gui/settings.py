"""What the window remembers between sessions (QSettings): last folders, device, theme, and
where the user was in each guided flow. Keys are namespaced; values are plain strings/ints.

Tests and the benchmark point `Settings` at an INI file of their own, so they never touch the
user's real settings.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

THEMES = ("light", "system")  # light: the workbench's Fusion palette; system: the desktop's own
DEVICES = ("auto", "cpu", "cuda")


class Settings:
    def __init__(self, path: str | Path | None = None):
        if path is not None:
            self.q = QSettings(str(path), QSettings.IniFormat)
        else:
            self.q = QSettings("distillation-workbench", "Distillation Workbench")

    # -- folders -----------------------------------------------------------------------
    def last_folder(self, purpose: str = "") -> str:
        """The folder last used for `purpose` (a field name), else the last folder at all."""
        value = self.q.value(f"folders/{purpose}", "") if purpose else ""
        return str(value or self.q.value("folders/_last", "") or Path.home())

    def remember_folder(self, purpose: str, path: str | Path) -> None:
        p = Path(path)
        folder = str(p if p.is_dir() else p.parent)
        if purpose:
            self.q.setValue(f"folders/{purpose}", folder)
        self.q.setValue("folders/_last", folder)
        self.q.sync()

    # -- device / theme ------------------------------------------------------------------
    @property
    def device(self) -> str:
        value = str(self.q.value("run/device", "auto") or "auto")
        return value if value in DEVICES or value.startswith("cuda:") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.q.setValue("run/device", value)
        self.q.sync()

    @property
    def theme(self) -> str:
        value = str(self.q.value("ui/theme", "light") or "light")
        return value if value in THEMES else "light"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"unknown theme {value!r} (themes: {', '.join(THEMES)})")
        self.q.setValue("ui/theme", value)
        self.q.sync()

    def apply_theme(self, app) -> None:
        from . import theme

        if self.theme == "light":
            theme.apply(app)

    # -- flows ---------------------------------------------------------------------------
    def flow_step(self, flow_key: str) -> str:
        return str(self.q.value(f"flows/{flow_key}/step", "") or "")

    def set_flow_step(self, flow_key: str, step: str) -> None:
        self.q.setValue(f"flows/{flow_key}/step", step)

    def flow_values(self, flow_key: str) -> dict:
        """The settings last used in a flow (JSON), so a flow reopens where it was left."""
        import json

        text = str(self.q.value(f"flows/{flow_key}/values", "") or "")
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def set_flow_values(self, flow_key: str, values: dict) -> None:
        import json

        self.q.setValue(f"flows/{flow_key}/values", json.dumps(values))

    def sync(self) -> None:
        self.q.sync()
