"""The guided flow end to end on the tiny plugin: previews off the GUI thread, a run cancelled
and resumed from the flow, Inspect with the plugin's view, footprint table, export and run card."""
import pytest
from PySide6.QtCore import Qt

pytestmark = pytest.mark.gui

RUN_TIMEOUT = 180_000  # ms: generous: each run spawns a worker that imports torch, on a busy 2-core machine


def open_flow(window):
    item = next(window.tree.item_for("tiny").child(i) for i in range(window.tree.item_for("tiny").childCount())
                if window.tree.item_for("tiny").child(i).text(0).startswith("▶ Guided"))
    window.tree._clicked(item)  # the tree's guided entry opens the flow
    page = window.flow_pages["tiny.fit"]
    assert window.pages.currentWidget() is page
    window.activateWindow()  # shortcuts reach an active window only
    return page


def wait_preview(qtbot, step):
    qtbot.waitUntil(lambda: not step.computing and (step.view.preview is not None or step.view.error_line.message),
                    timeout=120_000)


def test_walk_the_tiny_flow_previews_follow_the_settings(window, qtbot):
    page = open_flow(window)
    assert [page.step_list.item(i).text().split()[1] for i in range(6)] == \
        ["Teacher", "Domain", "Sampling", "Student", "Distill", "Inspect"]
    assert page.current_kind == "teacher"
    teacher = page.step_page("teacher")
    wait_preview(qtbot, teacher)
    assert teacher.view.preview.figures["parameters"] == "0"
    assert "latency (batch 64)" in teacher.view.preview.figures
    # keyboard: Alt+N is the Next button's mnemonic; Ctrl+4 jumps to a step
    page.next_button.click()
    assert page.current_kind == "data"
    data = page.step_page("data")
    wait_preview(qtbot, data)
    assert data.view.preview.figures["samples"] == "256" and data.view.preview.figures["validation"] == "51"
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    page.step_list.setFocus()
    qtbot.keyClick(page.step_list, Qt.Key_4, Qt.ControlModifier)
    assert page.current_kind == "student"
    qtbot.keyClick(page.step_list, Qt.Key_Up)  # the list: arrows move between steps
    assert page.current_kind == "sampling"
    qtbot.keyClick(page.step_list, Qt.Key_Down)
    student = page.step_page("student")
    wait_preview(qtbot, student)
    assert student.view.preview.figures["parameters"] == f"{4 * 16 + 16 + 16 + 1:,d}"  # Linear(4,16)+Linear(16,1)
    # a changed choice re-previews (debounced, off the GUI thread); the widget sits on this step's page
    hidden = page.form.widgets["hidden"]
    assert student.isAncestorOf(hidden)
    hidden.setValue(8)
    qtbot.waitUntil(lambda: student.view.preview is not None and
                    student.view.preview.figures["parameters"] == str(4 * 8 + 8 + 8 + 1), timeout=120_000)
    rows = student.view.preview.tables[0].rows
    assert rows[0] == ["parameters", "0", "49"]  # teacher next to student
    # an unusable data file: a readable message naming the file, the traceback one click away
    page.go_to("data")
    page.form.widgets["data_file"].setText("/nonexistent/inputs.npy")
    qtbot.waitUntil(lambda: bool(data.view.error_line.message), timeout=120_000)
    assert "/nonexistent/inputs.npy" in data.view.error_line.message and "not found" in data.view.error_line.message
    assert data.view.error_line.details_button.isVisible()
    data.view.error_line.show_details().close()
    page.form.widgets["data_file"].setText("")
    # an invalid setting marks its step in the list and disables Run
    page.form.widgets["device"].setText("gpu")
    assert page.step_list.item(4).text().endswith("!") and not page.run_button.isEnabled()
    page.form.widgets["device"].setText("cpu")
    assert not page.step_list.item(4).text().endswith("!") and page.run_button.isEnabled()
    # fields no step claims are still reachable, under More settings in Distill
    assert page.distill.isAncestorOf(page.form.widgets["step_delay_s"])


def test_run_cancel_resume_then_inspect_and_export(window, qtbot, tmp_path):
    page = open_flow(window)
    page.go_to("distill")
    distill = page.distill
    qtbot.waitUntil(lambda: distill.cuda is not None, timeout=120_000)
    assert "runs on" in distill.device_label.text() and "CPU" in distill.device_label.text()
    assert "Student" in distill.recap.text() and "hidden" in distill.recap.text()
    page.form.set_values({"epochs": 3, "step_delay_s": 0.15, "device": "cpu"})
    with qtbot.waitSignal(page.run_started, timeout=120_000) as started:
        qtbot.keyClick(page.run_button, Qt.Key_Return, Qt.ControlModifier)  # Ctrl+Return runs
    run_id = started.args[0]
    # cancel after the first checkpoint (epoch 0), then resume from it
    qtbot.waitUntil(lambda: len(window.session.store.metrics(run_id, "val_loss")) >= 1, timeout=RUN_TIMEOUT)
    with qtbot.waitSignal(page.run_finished, timeout=30_000) as finished:
        page.cancel_button.click()
    assert finished.args == [run_id, "cancelled"]
    assert distill.resume_button.isVisible() and run_id in distill.resume_label.text()
    page.form.set_values({"step_delay_s": 0.0})  # resume uses the run's own config, not the form
    with qtbot.waitSignal(page.run_finished, timeout=RUN_TIMEOUT) as finished:
        distill.resume_button.click()
    assert finished.args == [run_id, "completed"]
    run = window.session.store.get_run(run_id)
    assert run["resumes"] == 1 and len(window.session.store.metrics(run_id, "val_loss")) == 3
    assert not distill.resume_button.isVisible()
    # Inspect: the run, the plugin's view, the footprint table (measured off the GUI thread)
    page.next_button.click()
    inspect = page.inspect
    assert page.current_kind == "inspect" and inspect.run_id == run_id
    assert inspect.detail.tabText(inspect.detail.currentIndex()) == "Weights"
    qtbot.waitUntil(lambda: inspect.table.rowCount() >= 1, timeout=60_000)
    assert inspect.table.item(0, 0).text() == "student" and inspect.table.item(0, 1).text() == "97"
    assert inspect.table.item(0, 5).text().endswith("ms")
    with qtbot.waitSignal(inspect.exported, timeout=60_000):
        inspect.ts_button.click()
    qtbot.waitUntil(lambda: "Exported student as torchscript" in inspect.status.text(), timeout=5_000)
    with qtbot.waitSignal(inspect.card_written, timeout=60_000) as written:
        inspect.export_card(tmp_path / "card.html")
    assert written.args[1] == "" and written.args[0] == str(tmp_path / "card.html")
    text = (tmp_path / "card.html").read_text(encoding="utf-8")
    assert run_id in text and "<svg" in text and "train_loss" in text and "torch" in text
    assert "What was chosen" not in text or "Teacher" in text
    assert "97" in text  # the footprint table


def test_a_new_flow_page_reopens_with_the_last_settings_step_and_folders(window, qtbot, tmp_path):
    from workbench.gui.flow import FlowPage
    from workbench.gui.settings import Settings

    page = open_flow(window)
    page.form.set_values({"hidden": 9, "device": "cpu"})
    page.go_to("student")
    page.settings.remember_folder("data_file", tmp_path / "inputs.npy")
    window.set_theme("system")  # View menu
    page.settings.flush()
    settings = Settings(window.session.home / "gui-settings.ini")  # read back from the file
    again = FlowPage(window.session, page.plugin, page.spec, page.flow, settings)
    qtbot.addWidget(again)
    assert again.form.data()["hidden"] == 9 and again.form.data()["device"] == "cpu"
    assert again.current_kind == "student"
    assert settings.last_folder("data_file") == str(tmp_path) and settings.last_folder("other") == str(tmp_path)
    assert settings.theme == "system"
    window.set_theme("light")
