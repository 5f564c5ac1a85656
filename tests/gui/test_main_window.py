import pytest

from workbench.api import PipelineConfig, PipelineSpec, Plugin
from workbench.core.plugins import PluginManager, PluginResult
from workbench.core.session import Session

pytestmark = pytest.mark.gui
RUN_TIMEOUT = 90_000  # ms; a run's worker is a spawned process that imports torch


@pytest.fixture
def window(qtbot, wb_home, tiny_plugin):
    from workbench.gui.main_window import MainWindow

    manager = PluginManager.from_plugins(tiny_plugin)
    manager.results.append(PluginResult("shaky", "test", "shaky:plugin", error="ImportError: needs libfoo 9",
                                        detail="Traceback (most recent call last): ... ImportError: needs libfoo 9"))
    session = Session.open(wb_home, manager)
    win = MainWindow(session)
    qtbot.addWidget(win)
    win.show()
    yield win
    for job in session.engine.jobs.values():
        if not job.done:
            job.cancel(grace_s=1)
            job.wait(20)


def test_tree_lists_pipelines_and_broken_plugin(window, qtbot):
    labels = []
    for i in range(window.tree.topLevelItemCount()):
        top = window.tree.topLevelItem(i)
        labels.append(top.text(0))
        labels += [top.child(j).text(0) for j in range(top.childCount())]
    assert "Fit a tiny MLP" in labels and "shaky (broken)" in labels
    assert any("needs libfoo 9" in label for label in labels)
    box = window.show_broken("shaky")
    assert "needs libfoo 9" in box.text() and "Traceback" in box.detailedText()
    box.close()


def test_invalid_value_shows_message_and_disables_run(window):
    page = window.open_pipeline("tiny", "fit")
    assert page.run_button.isEnabled()
    page.form.widgets["epochs"].setValue(0)  # ge=1
    assert not page.run_button.isEnabled()
    assert page.form.error.text().startswith("epochs:")
    page.form.widgets["epochs"].setValue(2)
    assert page.run_button.isEnabled() and page.form.error.text() == ""


def test_run_progress_completes_and_lands_in_table(window, qtbot):
    page = window.open_pipeline("tiny", "fit")
    page.form.set_values({"epochs": 3, "hidden": 7})
    page.run_button.click()
    assert page.cancel_button.isEnabled() and not page.run_button.isEnabled()
    run_id = page.job.run_id
    qtbot.waitUntil(lambda: "completed" in page.status.text(), timeout=RUN_TIMEOUT)
    assert page.progress.value() == 1000
    assert set(page.curves.series) == {"train_loss", "val_loss"} and len(page.curves.series["val_loss"][0]) == 3
    window.tabs.setCurrentIndex(1)
    rows = {window.runs.proxy.index(r, 0).data(): window.runs.proxy.index(r, 2).data()
            for r in range(window.runs.proxy.rowCount())}
    assert rows[run_id] == "completed"
    assert window.session.store.get_run(run_id)["config"]["hidden"] == 7
    # detail pane hosts the plugin's view of the model artifact
    window.runs.table.selectRow(0)
    assert "tiny.weights" in window.runs.detail.views
    assert window.runs.detail.views["tiny.weights"].weights.shape == (7, 4)


def test_cancel_marks_run_cancelled(window, qtbot):
    page = window.open_pipeline("tiny", "fit")
    page.form.set_values({"epochs": 200, "step_delay_s": 0.05})
    page.run_button.click()
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=RUN_TIMEOUT)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: "cancelled" in page.status.text(), timeout=30_000)
    assert window.session.store.get_run(page.job.run_id)["status"] == "cancelled"
    assert page.run_button.isEnabled()


def test_compare_two_runs_shows_differing_key(window, qtbot, tiny_plugin):
    from workbench.core.config_io import build_config

    spec = tiny_plugin.pipeline("fit")
    jobs = [window.session.engine.submit(tiny_plugin, spec, build_config(tiny_plugin, spec, None, ["epochs=2", f"lr={lr}"]))
            for lr in (0.05, 0.01)]
    qtbot.waitUntil(lambda: all(j.done for j in jobs), timeout=RUN_TIMEOUT)
    window.tabs.setCurrentIndex(1)
    window.runs.filter.setText("fit")
    window.runs.table.selectAll()
    assert window.runs.compare_button.isEnabled()
    window.runs.compare()
    dialog = window.runs.compare_dialog
    assert dialog.differing == ["lr"]
    headers = [dialog.table.verticalHeaderItem(i).text() for i in range(dialog.table.rowCount())]
    assert "config: lr" in headers and "metric: val_loss" in headers
    window.runs.filter.setText("no-such-run")
    assert window.runs.proxy.rowCount() == 0


def test_a_failing_view_shows_its_error(window, qtbot, wb_home, tiny_plugin):
    import dataclasses

    from workbench.api import ViewSpec

    broken_view = dataclasses.replace(tiny_plugin, views=[ViewSpec("bad", "Bad", ("model",), "nosuchmodule:view")])
    window.session.plugins.results[0].plugin = broken_view
    spec = broken_view.pipeline("fit")
    from workbench.core.config_io import build_config

    job = window.session.engine.submit(broken_view, spec, build_config(broken_view, spec, None, ["epochs=1"]))
    qtbot.waitUntil(lambda: job.done, timeout=RUN_TIMEOUT)
    window.runs.refresh()
    window.runs.detail.show_run(job.run_id)
    assert "view bad failed" in window.runs.detail.views["bad"].text()
