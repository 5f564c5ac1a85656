"""Engine events arrive on the engine's reader thread; a queued signal moves them to the UI thread."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal


class EventBridge(QObject):
    event = Signal(str, object)

    def __init__(self, receiver, parent=None):
        super().__init__(parent)
        self.event.connect(receiver, Qt.QueuedConnection)

    def __call__(self, run_id: str, event: object) -> None:  # called from the engine's thread
        self.event.emit(run_id, event)
