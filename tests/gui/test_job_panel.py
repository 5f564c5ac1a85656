"""Engine events -> Qt: the bridge buffers on the engine's thread and delivers throttled batches."""
import threading
import time

import pytest

from workbench.api import MetricEvent, Progress, StatusEvent

pytestmark = pytest.mark.gui


def test_a_flood_from_another_thread_arrives_in_few_batches_in_order(qtbot):
    from PySide6.QtCore import QThread

    from workbench.gui.job_panel import EventBridge

    bridge = EventBridge(min_interval_ms=50)
    got, threads = [], []

    def on_batch(items):
        threads.append(QThread.currentThread())
        got.extend(items)

    bridge.batch.connect(on_batch)

    def flood():
        for i in range(20_000):
            bridge("r1", Progress(i + 1, 20_000))
            if i % 100 == 0:
                bridge("r1", MetricEvent("loss", 1.0 / (i + 1), i))
        bridge("r1", StatusEvent("completed"))

    worker = threading.Thread(target=flood)
    worker.start()
    qtbot.waitUntil(lambda: bool(got) and isinstance(got[-1][1], StatusEvent), timeout=10_000)
    worker.join()
    assert bridge.received == 20_201
    assert all(t is bridge.thread() for t in threads)  # delivered on the UI thread
    metrics = [e.step for _, e in got if isinstance(e, MetricEvent)]
    assert metrics == list(range(0, 20_000, 100))  # every metric, in order
    progress = [e for _, e in got if isinstance(e, Progress)]
    assert progress[-1].done == 20_000 and len(progress) < 1000  # collapsed
    assert bridge.delivered_batches < 200


def test_eta_comes_from_the_progress_rate():
    from workbench.gui.job_panel import EtaEstimator, format_duration

    eta = EtaEstimator(window_s=30)
    assert eta.update(100.0, 0, 100) is None
    assert eta.update(100.2, 1, 100) is None  # too soon to tell
    assert eta.update(110.0, 10, 100) == pytest.approx(90.0)  # 1 step/s, 90 steps left
    assert eta.update(150.0, 50, 100) == pytest.approx(50.0, rel=0.1)
    assert format_duration(42) == "42 s" and format_duration(125) == "2 min 05 s" and format_duration(7260) == "2 h 01 min"
