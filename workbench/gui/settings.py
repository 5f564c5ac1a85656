"""What the window remembers between sessions (an INI file read by QSettings): last folders,
device, theme, and the settings and step last used in each guided flow.

Reads come from memory (loaded once through QSettings). Writes go to memory at once and to the
file on a background thread, in QSettings' INI format but with plain Python file I/O: QSettings
writes safely (write, fsync, rename), which took close to a second on a busy disk, and its
calls hold Python's GIL — from any thread that froze the window while a run streamed progress.
"""
from __future__ import annotations

import json
import queue
import threading
from pathlib import Path

from PySide6.QtCore import QSettings

def _ini_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_ini(path: Path, values: dict[str, str]) -> None:
    """All `values` ("group/key/sub" -> str) as a QSettings-readable INI file, atomically."""
    groups: dict[str, list[str]] = {}
    for key in sorted(values):
        group, _, rest = key.partition("/")
        if not rest:
            group, rest = "General", key
        groups.setdefault(group, []).append(f"{rest.replace('/', chr(92))}={_ini_value(values[key])}")
    text = "\n\n".join(f"[{g}]\n" + "\n".join(lines) for g, lines in groups.items()) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


THEMES = ("light", "system")  # light: the workbench's Fusion palette; system: the desktop's own
DEVICES = ("auto", "cpu", "cuda")


class Settings:
    def __init__(self, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        q = self._open()
        self._values: dict[str, str] = {k: str(q.value(k)) for k in q.allKeys()}
        self._writes: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    def _open(self) -> QSettings:
        if self.path is not None:
            return QSettings(self.path, QSettings.IniFormat)
        return QSettings("distillation-workbench", "Distillation Workbench")

    # -- storage ---------------------------------------------------------------------------
    def get(self, key: str, default: str = "") -> str:
        return self._values.get(key, default)

    def set(self, key: str, value: str) -> None:
        if self._values.get(key) == value:
            return
        with self._lock:
            self._values[key] = value
        self._writes.put(key)
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_loop, name="settings-writer", daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            try:
                self._writes.get(timeout=2.0)
            except queue.Empty:
                return
            done = 1
            while True:  # coalesce a burst of changes into one file write
                try:
                    self._writes.get_nowait()
                    done += 1
                except queue.Empty:
                    break
            try:
                with self._lock:
                    values = dict(self._values)
                if self.path is not None:
                    write_ini(Path(self.path), values)
                else:  # the platform's own store (e.g. the registry): only QSettings can write it
                    q = self._open()
                    for k, v in values.items():
                        q.setValue(k, v)
                    q.sync()
            except OSError:
                pass  # e.g. a read-only home: the settings live on in memory for this session
            finally:
                for _ in range(done):
                    self._writes.task_done()

    def flush(self) -> None:
        """Wait until every change so far is written (tests; closing the window)."""
        self._writes.join()

    # -- folders -----------------------------------------------------------------------------
    def last_folder(self, purpose: str = "") -> str:
        """The folder last used for `purpose` (a field name), else the last folder at all."""
        value = self.get(f"folders/{purpose}") if purpose else ""
        return value or self.get("folders/_last") or str(Path.home())

    def remember_folder(self, purpose: str, path: str | Path) -> None:
        p = Path(path)
        folder = str(p if p.is_dir() else p.parent)
        if purpose:
            self.set(f"folders/{purpose}", folder)
        self.set("folders/_last", folder)

    # -- device / theme --------------------------------------------------------------------------
    @property
    def device(self) -> str:
        value = self.get("run/device", "auto") or "auto"
        return value if value in DEVICES or value.startswith("cuda:") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.set("run/device", value)

    @property
    def theme(self) -> str:
        value = self.get("ui/theme", "light") or "light"
        return value if value in THEMES else "light"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"unknown theme {value!r} (themes: {', '.join(THEMES)})")
        self.set("ui/theme", value)

    def apply_theme(self, app) -> None:
        from . import theme

        if self.theme == "light":
            theme.apply(app)
        else:
            app.setPalette(app.style().standardPalette())

    # -- flows -----------------------------------------------------------------------------------
    def flow_step(self, flow_key: str) -> str:
        return self.get(f"flows/{flow_key}/step")

    def set_flow_step(self, flow_key: str, step: str) -> None:
        self.set(f"flows/{flow_key}/step", step)

    def flow_values(self, flow_key: str) -> dict:
        """The settings last used in a flow, so a flow reopens where it was left."""
        text = self.get(f"flows/{flow_key}/values")
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def set_flow_values(self, flow_key: str, values: dict) -> None:
        self.set(f"flows/{flow_key}/values", json.dumps(values, sort_keys=True))
