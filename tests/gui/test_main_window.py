"""The window end to end on the tiny plugin: each run spawns a worker that imports torch (3-5 s)."""
import pytest

from workbench.core.config_io import build_config

from PySide6.QtCore import Qt

RUN_TIMEOUT = 60_000  # ms: a run's worker is a spawned process that imports torch

pytestmark = pytest.mark.gui


def submit(session, plugin, *overrides):
    spec = plugin.pipeline("fit")
    return session.engine.submit(plugin, spec, build_config(plugin, spec, None, list(overrides)))


def test_tree_shows_pipelines_and_the_broken_plugin_with_its_traceback(window, qtbot):
    labels = window.tree.labels()
    assert "Tiny (test plugin)" in labels and "Fit a tiny MLP" in labels
    assert "shaky (broken)" in labels and "ImportError: needs libfoo 9" in labels
    broken = window.tree.item_for("shaky")
    window.tree._clicked(broken.child(0))  # one click on the error line
    dialog = window.tree.dialog
    assert dialog is not None and dialog.isVisible()
    assert "needs libfoo 9" in dialog.text.toPlainText() and "Traceback" in dialog.text.toPlainText()
    dialog.close()
    window.tree._clicked(window.tree.item_for("tiny", "fit"))
    assert window.pages.currentWidget() is window.run_pages["tiny.fit"]
    # a planned pipeline: greyed, marked, and its page cannot run
    assert "Distill later — not built yet" in labels
    planned = window.tree.item_for("later", "distill")
    assert planned.foreground(0).color().name() == "#8a8f98"
    window.tree._clicked(planned)
    page = window.run_pages["later.distill"]
    assert not page.run_button.isEnabled() and "planned" in page.status.text()


def test_form_widgets_bounds_and_inline_validation(window):
    from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLineEdit, QPushButton, QSpinBox

    page = window.open_pipeline("tiny", "fit")
    form = page.form
    w = form.widgets
    assert isinstance(w["epochs"], QSpinBox) and (w["epochs"].minimum(), w["epochs"].maximum()) == (1, 1000)
    assert isinstance(w["lr"], QDoubleSpinBox) and 0 < w["lr"].minimum() < 1e-5 and w["lr"].maximum() == 10
    assert isinstance(w["optimizer"], QComboBox) and [w["optimizer"].itemText(i) for i in range(2)] == ["sgd", "adam"]
    assert isinstance(w["student"], QComboBox) and w["student"].count() == 2  # the registry's students
    assert isinstance(w["data_file"], QLineEdit) and isinstance(w["device"], QLineEdit)
    assert form.findChild(QPushButton, "browse_data_file") is not None  # *_file: Browse…
    assert form.findChild(QPushButton, "browse_device") is None
    assert "Passes over the training data" in w["epochs"].toolTip()
    w["epochs"].setValue(0)  # below ge=1: the spin box holds the bound
    assert w["epochs"].value() == 1
    w["epochs"].setValue(3)
    w["optimizer"].setCurrentIndex(1)
    assert form.data()["epochs"] == 3 and form.data()["optimizer"] == "adam"
    assert page.run_button.isEnabled()
    w["device"].setText("gpu")  # not auto|cpu|cuda[:N]
    assert not form.valid and not page.run_button.isEnabled()
    assert form.field_errors["device"].isVisibleTo(window) and "pattern" in form.field_errors["device"].text()
    assert form.error.text().startswith("device:") and w["device"].property("invalid") is True  # outlined
    assert not form.field_errors["epochs"].isVisibleTo(window)
    w["device"].setText("cpu")
    assert form.valid and page.run_button.isEnabled() and form.error.text() == ""
    assert not form.field_errors["device"].isVisibleTo(window) and not w["device"].property("invalid")
    assert form.validate().device == "cpu"
    form.reset()
    assert form.data()["epochs"] == 5 and form.data()["device"] == "auto"


def test_run_progresses_completes_and_shows_in_runs_with_weights_view(window, qtbot):
    page = window.open_pipeline("tiny", "fit")
    page.form.widgets["epochs"].setValue(4)
    page.form.widgets["hidden"].setValue(7)
    page.form.widgets["step_delay_s"].setValue(0.02)
    seen = []
    page.jobs.progress.valueChanged.connect(seen.append)
    with qtbot.waitSignal(page.jobs.run_started, timeout=20_000) as started:
        qtbot.mouseClick(page.run_button, Qt.LeftButton)
        assert not page.run_button.isEnabled()  # at once: submitting happens off the UI thread
    run_id = started.args[0]
    assert page.job.run_id == run_id and page.cancel_button.isEnabled() and not page.run_button.isEnabled()
    with qtbot.waitSignal(page.jobs.run_finished, timeout=RUN_TIMEOUT) as finished:
        pass
    assert finished.args == [run_id, "completed"]
    assert any(0 < v < 1000 for v in seen), "progress advanced before the end"
    assert page.progress.value() == 1000 and "completed" in page.status.text()
    assert set(page.curves.series) == {"train_loss", "val_loss"} and len(page.curves.series["val_loss"][0]) == 4
    assert page.run_button.isEnabled() and not page.cancel_button.isEnabled()
    # the run is in the table (refreshed on run end), with its last metrics as columns
    rows = window.runs.rows()
    assert rows[run_id]["status"] == "completed" and rows[run_id]["pipeline"] == "tiny.fit"
    assert "val_loss" in window.runs.metric_keys and rows[run_id]["val_loss"]
    # "Show in Runs" selects it; the detail has the record and, built on demand, the weights view
    page.jobs.show_button.click()
    assert window.tabs.currentWidget() is window.runs and window.runs.selected_ids() == [run_id]
    detail = window.runs.detail
    assert detail.run_id == run_id and "tiny.weights" not in detail.views  # lazy
    html = detail.summary.toHtml()
    assert "model.safetensors" in html and "val_mse" in html and "hidden" in html
    view = detail.open_view("tiny.weights")
    assert view is not None and view.weights.shape == (7, 4)


def test_cancel_during_a_long_run(window, qtbot):
    page = window.open_pipeline("tiny", "fit")
    page.form.set_values({"epochs": 200, "step_delay_s": 0.05})
    page.run_button.click()
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=RUN_TIMEOUT)
    assert "left" in page.jobs.eta_label.text() or "estimating" in page.jobs.eta_label.text()
    with qtbot.waitSignal(page.jobs.run_finished, timeout=30_000) as finished:
        page.cancel_button.click()
    assert finished.args[1] == "cancelled"
    assert window.session.store.get_run(page.job.run_id)["status"] == "cancelled"
    assert page.run_button.isEnabled() and "cancelled" in page.status.text()


def test_failed_run_shows_a_readable_error_with_details(window, qtbot):
    page = window.open_pipeline("tiny", "fit")
    page.form.set_values({"epochs": 3, "fail_at_epoch": 1})
    with qtbot.waitSignal(page.jobs.run_finished, timeout=RUN_TIMEOUT) as finished:
        page.run_button.click()
    assert finished.args[1] == "failed"
    line = page.jobs.error_line
    assert line.isVisibleTo(window) and "failing at epoch 1" in line.label.text()
    dialog = line.show_details()
    assert "failing at epoch 1" in dialog.text.toPlainText()
    dialog.close()


def test_compare_two_runs_shows_the_differing_key(window, qtbot, tiny_plugin):
    jobs = [submit(window.session, tiny_plugin, "epochs=2", f"lr={lr}") for lr in (0.05, 0.01)]
    qtbot.waitUntil(lambda: all(j.done for j in jobs), timeout=RUN_TIMEOUT)
    window.tabs.setCurrentWidget(window.runs)  # refreshes
    runs = window.runs
    assert set(runs.rows()) == {j.run_id for j in jobs}
    runs.filter.setText("no-such-run")
    assert runs.proxy.rowCount() == 0
    runs.filter.setText("tiny.fit")
    runs.table.selectAll()
    assert runs.compare_button.isEnabled()
    runs.compare_button.click()
    dialog = runs.compare_dialog
    assert dialog.differing == ["lr"]
    labels = dialog.view.row_labels()
    assert "config: lr" in labels and "config: epochs" not in labels and "metric: val_loss" in labels
    assert len(dialog.view.curves.items) == 4  # 2 runs x (train_loss, val_loss)
    # sorting by a metric column orders the rows by value
    col = ["run", "pipeline", "status", "seed", "duration", "created", *runs.metric_keys].index("val_loss")
    runs.table.sortByColumn(col, Qt.AscendingOrder)
    values = [float(runs.proxy.index(r, col).data()) for r in range(runs.proxy.rowCount())]
    assert values == sorted(values)


def test_a_failing_view_shows_its_error_and_runs_appear_without_a_click(window, qtbot, tiny_plugin):
    import dataclasses

    from workbench.api import ViewSpec

    broken_view = dataclasses.replace(tiny_plugin, views=[ViewSpec("bad", "Bad", ("model",), "nosuchmodule:view")])
    window.session.plugins.results[0].plugin = broken_view
    window.tabs.setCurrentWidget(window.runs)
    window.runs.timer.setInterval(200)
    job = submit(window.session, broken_view, "epochs=1")
    # the cheap timer picks the run up, then notices it completed
    qtbot.waitUntil(lambda: window.runs.rows().get(job.run_id, {}).get("status") == "completed", timeout=RUN_TIMEOUT)
    window.runs.select_runs([job.run_id])
    view = window.runs.detail.open_view("bad")
    assert "could not be shown" in view.label.text() and "nosuchmodule" in view.label.text()
    assert view.details_button.isVisibleTo(window) and "Traceback" in view.detail
    assert not window.runs.refresh()  # nothing changed: no rebuild


def test_use_config_of_a_run_fills_the_form(window, qtbot, tiny_plugin):
    spec = tiny_plugin.pipeline("fit")
    config = build_config(tiny_plugin, spec, None, ["hidden=9", "optimizer='adam'"]).model_dump(mode="json")
    run_id = window.session.store.create_run("tiny", "fit", config, 0)  # a record is enough: no worker
    window.use_config(run_id)
    page = window.run_pages["tiny.fit"]
    assert page.form.data()["hidden"] == 9 and page.form.data()["optimizer"] == "adam"
