"""`workbench --selftest`: proves that an installation works, from source or frozen.

It discovers the plugins, opens the desktop window once offscreen (Qt, its platform plugin and
the plugins' GUI side load), then runs every ready pipeline that declares a `smoke` config
through the real job engine (a spawned worker process) in a temporary home that is deleted
afterwards. One line per check, a summary, exit 0 only if every check passed.

The packaged app calls ``main(expect=...)`` with the plugins it bundles, so a bundle that lost
a plugin's entry-point metadata fails here instead of starting with an empty plugin tree.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

PIPELINE_TIMEOUT_S = 600.0


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


class SelfTest:
    def __init__(self, out: TextIO):
        self.out, self.checks = out, []

    def run(self, name: str, fn: Callable[[], str]) -> bool:
        """Run one check; its return value is the line's detail, any exception fails it."""
        t0 = time.perf_counter()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next check runs
            detail, ok = f"{type(exc).__name__}: {exc}", False
            self.out.write(traceback.format_exc())
        check = Check(name, ok, time.perf_counter() - t0, detail)
        self.checks.append(check)
        self.out.write(f"  {'ok  ' if ok else 'FAIL'}  {name:<16} {check.seconds:6.1f} s  {detail}\n")
        self.out.flush()
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def main(argv: list[str] | None = None, *, expect: Iterable[str] = (), manager: Any = None,
         gui: bool = True, out: TextIO | None = None) -> int:
    """Exit code 0 when every check passed, 1 otherwise.

    expect: plugin names that must be discovered and healthy (the bundled ones when frozen).
    manager: a PluginManager to test instead of discovery (tests).
    """
    out = out or sys.stdout
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    t0 = time.perf_counter()
    saved_home = os.environ.get("WORKBENCH_HOME")
    with tempfile.TemporaryDirectory(prefix="workbench-selftest-") as tmp:
        # Set before anything asks for the home: the worker processes inherit it.
        os.environ["WORKBENCH_HOME"] = tmp
        try:
            test = _run_checks(Path(tmp), list(expect), manager, gui, out)
        finally:
            if saved_home is None:
                os.environ.pop("WORKBENCH_HOME", None)
            else:
                os.environ["WORKBENCH_HOME"] = saved_home
    failed = [c.name for c in test.checks if not c.ok]
    verdict = "passed" if test.passed else f"FAILED ({', '.join(failed) or 'nothing was checked'})"
    out.write(f"self-test {verdict}: {len(test.checks)} checks in {time.perf_counter() - t0:.1f} s\n")
    out.flush()
    return 0 if test.passed else 1


def _run_checks(home: Path, expect: list[str], manager: Any, gui: bool, out: TextIO) -> SelfTest:
    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session

    frozen = "frozen" if getattr(sys, "frozen", False) else "from source"
    out.write(f"workbench self-test ({frozen}, Python {sys.version.split()[0]}, "
              f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}), temporary home {home}\n")
    test = SelfTest(out)
    holder: dict[str, Any] = {}

    def discover() -> str:
        holder["manager"] = manager or PluginManager.discover()
        return _check_plugins(holder["manager"], expect)

    if not test.run("plugins", discover):
        return test
    session = Session.open(home, holder["manager"])
    try:
        if gui:
            test.run("qt window", lambda: _check_window(session))
        for plugin in session.plugins.plugins.values():
            smoke = [s for s in plugin.pipelines if s.status == "ready" and s.smoke is not None]
            if not smoke:
                test.run(plugin.name, lambda p=plugin: _no_smoke(p))
            for spec in smoke:
                test.run(f"{plugin.name}.{spec.id}", lambda p=plugin, s=spec: _check_pipeline(session, p, s))
    finally:
        session.store.close()
    return test


def _check_plugins(manager: Any, expect: list[str]) -> str:
    problems = [f"{r.name} is broken: {r.error}" for r in manager.broken]
    missing = [name for name in expect if name not in manager.plugins and name not in {r.name for r in manager.broken}]
    problems += [f"{name} was not found (its entry-point metadata is missing?)" for name in missing]
    if not manager.plugins:
        problems.append("no plugin was discovered")
    if problems:
        raise RuntimeError("; ".join(problems))
    return ", ".join(f"{p.name} {p.version}" for p in manager.plugins.values())


def _check_window(session: Any) -> str:
    from PySide6.QtWidgets import QApplication

    from workbench.gui import theme
    from workbench.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    theme.apply(app)
    window = MainWindow(session)
    window.show()
    app.processEvents()
    shown = window.isVisible()
    tree_items = window.tree.topLevelItemCount()
    window.close()
    window.deleteLater()
    app.processEvents()
    if not shown:
        raise RuntimeError("the main window did not show")
    if tree_items < len(session.plugins.results):
        raise RuntimeError(f"the plugin tree shows {tree_items} of {len(session.plugins.results)} plugins")
    return f"platform {app.platformName()}, Qt {_qt_version()}, {tree_items} plugins in the tree"


def _qt_version() -> str:
    from PySide6.QtCore import qVersion

    return qVersion()


def _no_smoke(plugin: Any) -> str:
    ready = [s.id for s in plugin.pipelines if s.status == "ready"]
    if ready:
        raise RuntimeError(f"ready pipelines without a smoke config: {', '.join(ready)}")
    return "no ready pipeline yet (nothing to run)"


def _check_pipeline(session: Any, plugin: Any, spec: Any) -> str:
    from workbench.core.config_io import validate_config

    config = validate_config(plugin, spec, spec.smoke)
    job = session.engine.submit(plugin, spec, config)
    job.wait(PIPELINE_TIMEOUT_S)
    if not job.done:
        job.cancel(grace_s=5)
        job.wait(30)
        raise RuntimeError(f"run {job.run_id} did not finish in {PIPELINE_TIMEOUT_S:.0f} s")
    run = session.store.get_run(job.run_id)
    if run["status"] != "completed":
        detail = [log["message"] for log in session.store.logs(job.run_id) if log["level"] == "error"]
        raise RuntimeError(f"run {job.run_id} {run['status']}: {run['error']}"
                           + (f"\n{detail[-1]}" if detail else ""))
    artifacts = session.store.artifacts(job.run_id)
    metrics = session.store.last_metrics(job.run_id)
    return (f"run {job.run_id} completed on {run['device'] or '?'}: "
            f"{len(metrics)} metrics, {len(artifacts)} artifacts")
