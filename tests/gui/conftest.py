import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest  # noqa: E402


def _planned_plugin():
    from workbench.api import PipelineSpec, Plugin
    from workbench.testing.tiny import TinyFitConfig

    return Plugin("later", "Later (planned only)", "0.1", pipelines=[
        PipelineSpec("distill", "Distill later", TinyFitConfig, "nowhere.yet:run", status="planned")])


@pytest.fixture
def window(qtbot, wb_session):
    """The main window on a temporary store with the tiny plugin, a plugin whose only pipeline is
    planned, and a broken plugin."""
    from workbench.core.plugins import PluginResult
    from workbench.gui.main_window import MainWindow

    wb_session.plugins.results.append(
        PluginResult("shaky", "shaky-dist", "shaky.manifest:plugin", error="ImportError: needs libfoo 9",
                     detail="Traceback (most recent call last):\n  File \"shaky/manifest.py\", line 1\nImportError: needs libfoo 9"))
    wb_session.plugins.results.append(PluginResult("later", "direct", "", plugin=_planned_plugin()))
    win = MainWindow(wb_session)
    qtbot.addWidget(win)
    win.show()
    yield win
    for job in wb_session.engine.jobs.values():
        if not job.done:
            job.cancel(grace_s=1)
    win.runs.timer.stop()
    win.close()
