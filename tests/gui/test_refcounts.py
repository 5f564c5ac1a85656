"""Guards against a PySide6 regression (seen in 6.12.0) that dropped a reference to None on every
slot call and to True/False on every emit: on Python 3.11 the window crashed after a while."""
import sys

import pytest

pytestmark = pytest.mark.gui


def test_slot_calls_and_emits_keep_singleton_refcounts(qapp):
    from PySide6.QtCore import QObject, Qt, QTimer, Signal

    class Bridge(QObject):
        event = Signal(str, object)

    got = []
    bridge = Bridge()
    bridge.event.connect(lambda r, e: got.append(e), Qt.QueuedConnection)
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: None)
    before_none, before_true = sys.getrefcount(None), sys.getrefcount(True)
    timer.start()
    for i in range(2000):
        bridge.event.emit("run", {"i": i})
        qapp.processEvents()
    timer.stop()
    assert len(got) == 2000
    assert abs(sys.getrefcount(None) - before_none) < 200
    assert abs(sys.getrefcount(True) - before_true) < 200
