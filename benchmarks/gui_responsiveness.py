"""Event-loop stalls of the real main window while a run trains (target: worst <= 100 ms).

Opens the main window offscreen on a temporary home with the tiny plugin, sets the form
through its widgets and presses Run: the run trains for ~15-20 s and streams a progress event
per step (~150/s) and two metrics per epoch. A precise QTimer asks to fire every 5 ms; each
firing's lateness beyond that (actual interval - 5 ms) is a stall. Prints the worst stall, the
99th percentile and whether the worst is <= 100 ms; exits 1 if not.

    .venv/bin/python benchmarks/gui_responsiveness.py                  # the default run
    .venv/bin/python benchmarks/gui_responsiveness.py --step-delay 0   # a flood: thousands of events/s
    .venv/bin/python benchmarks/gui_responsiveness.py --screenshots assets/screenshots
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

INTERVAL_MS = 5
TARGET_MS = 100.0


def wait_for_run(app, page, timeout_s: float = 900.0) -> str:
    """Run the real event loop until the page's run finishes; returns its status."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    result = {}

    def finished(run_id: str, status: str) -> None:
        result["status"] = status
        loop.quit()

    page.jobs.run_finished.connect(finished)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    page.jobs.run_finished.disconnect(finished)
    app.processEvents()
    return result.get("status", "timeout")


def walk_flow(app, win):
    """Open the tiny flow and show each step until its preview is there (the flow's helper process
    starts on the way); returns the page on its Distill step and the worst stall of the walk."""
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer

    worst = [0.0]
    clock, timer = QElapsedTimer(), QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(INTERVAL_MS)

    def tick() -> None:
        worst[0] = max(worst[0], clock.nsecsElapsed() / 1e6 - INTERVAL_MS)
        clock.restart()

    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    page = win.open_flow("tiny", "fit")
    for kind in ("teacher", "data", "sampling", "student"):
        page.go_to(kind)
        step = page.step_page(kind)
        deadline = time.perf_counter() + 300
        while (step.computing or step.view.building or step.view.preview is None) and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.002)
    page.go_to("distill")
    while page.distill.cuda is None:
        app.processEvents()
        time.sleep(0.002)
    timer.stop()
    return page, worst[0]


def measure(app, win, epochs: int, step_delay: float, batch_size: int, lr: float, flow: bool = False) -> dict:
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer

    walk_worst = None
    if flow:  # the guided flow as a user takes it: every step's preview, then Run in Distill
        page, walk_worst = walk_flow(app, win)
    else:
        page = win.open_pipeline("tiny", "fit")
    form = page.form.widgets
    form["epochs"].setValue(epochs)
    form["step_delay_s"].setValue(step_delay)
    form["batch_size"].setValue(batch_size)
    form["lr"].setValue(lr)
    form["device"].setText("cpu")
    stalls: list[float] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(INTERVAL_MS)

    def tick() -> None:
        stalls.append(max(clock.nsecsElapsed() / 1e6 - INTERVAL_MS, 0.0))
        clock.restart()

    timer.timeout.connect(tick)
    counted = {"progress": 0}
    page.jobs.bridge.batch.connect(lambda items: counted.__setitem__("progress", counted["progress"] + len(items)))
    clock.start()
    timer.start()
    t0 = time.perf_counter()
    page.run_button.click()  # submit happens inside the measured window too
    status = wait_for_run(app, page)
    wall = time.perf_counter() - t0
    timer.stop()
    run_id = page.job.run_id
    stalls.sort()
    n = len(stalls)
    return {
        "status": status, "wall_s": wall, "ticks": n, "run_id": run_id,
        "events": page.jobs.bridge.received, "batches": page.jobs.bridge.delivered_batches,
        "metrics": len(win.session.store.metrics(run_id)),
        "worst": stalls[-1] if n else 0.0, "p99": stalls[int(0.99 * (n - 1))] if n else 0.0,
        "median": stalls[n // 2] if n else 0.0, "walk_worst": walk_worst,
    }


def screenshots(app, folder: str) -> None:
    """A window as a user sees it (the installed plugins and the tiny one) on a fresh home:
    two runs that differ in lr and optimizer; the window, the Runs tab and the compare view."""
    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session
    from workbench.gui.main_window import MainWindow
    from workbench.testing.tiny import plugin

    os.makedirs(folder, exist_ok=True)
    manager = PluginManager.discover()
    manager.results += PluginManager.from_plugins(plugin).results
    session = Session.open(tempfile.mkdtemp(prefix="wb-shots-"), manager)
    win = MainWindow(session)
    win.show()
    page = win.open_pipeline("tiny", "fit")
    form = page.form.widgets
    ids = []
    for lr, optimizer in ((0.05, "sgd"), (0.01, "adam")):
        page.form.reset()
        form["epochs"].setValue(40)
        form["lr"].setValue(lr)
        form["optimizer"].setCurrentIndex(form["optimizer"].findData(optimizer))
        form["device"].setText("cpu")
        page.run_button.click()
        wait_for_run(app, page)
        ids.append(page.job.run_id)
    page.curves.redraw()
    app.processEvents()
    paths = [os.path.join(folder, name) for name in ("main_window.png", "runs.png", "compare.png")]
    win.grab().save(paths[0])
    win.show_run(ids[-1])
    win.runs.detail.open_view("tiny.weights")
    app.processEvents()
    win.grab().save(paths[1])
    win.runs.select_runs(ids)
    dialog = win.runs.compare()
    app.processEvents()
    dialog.grab().save(paths[2])
    dialog.close()
    win.close()
    session.store.close()
    print("screenshots: " + ", ".join(f"{p} ({os.path.getsize(p) // 1024} KB)" for p in paths))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--step-delay", type=float, default=0.005, help="seconds of sleep per training step")
    ap.add_argument("--batch-size", type=int, default=8, help="smaller: more steps, more progress events")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--screenshots", default="", help="also save PNGs of the window and the compare view here")
    ap.add_argument("--flow", action="store_true", help="start the run from the guided flow's Distill step")
    args = ap.parse_args()

    from PySide6.QtWidgets import QApplication

    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session
    from workbench.gui import theme
    from workbench.gui.main_window import MainWindow
    from workbench.testing.tiny import plugin

    app = QApplication.instance() or QApplication([])
    theme.apply(app)
    session = Session.open(tempfile.mkdtemp(prefix="wb-bench-"), PluginManager.from_plugins(plugin))
    win = MainWindow(session)
    win.show()
    app.processEvents()
    r = measure(app, win, args.epochs, args.step_delay, args.batch_size, args.lr, flow=args.flow)
    print("started from: " + ("the guided flow (Distill step)" if args.flow else "the pipeline page"))
    print(f"run {r['run_id']}: {r['status']} in {r['wall_s']:.1f} s (worker start-up included); "
          f"{r['events']} engine events ({r['events'] / r['wall_s']:.0f}/s) reached the UI in {r['batches']} batches; "
          f"{r['metrics']} metric points stored")
    if r["walk_worst"] is not None:
        print(f"walking the flow's steps before the run (previews in the helper process, which starts on the way): "
              f"worst stall {r['walk_worst']:.1f} ms (not part of the run's figure below)")
    print(f"event-loop stall ({INTERVAL_MS} ms timer, {r['ticks']} ticks): worst {r['worst']:.1f} ms, "
          f"p99 {r['p99']:.1f} ms, median {r['median']:.2f} ms")
    ok = r["status"] == "completed" and r["worst"] <= TARGET_MS
    print(f"worst stall <= {TARGET_MS:.0f} ms: {'yes' if r['worst'] <= TARGET_MS else 'NO'}")
    win.close()
    session.store.close()
    if args.screenshots:
        screenshots(app, args.screenshots)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
