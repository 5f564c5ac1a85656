"""The compare view's Pareto tab: quality against cost across runs, from what runs recorded."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _run(store, subject_values: dict[str, dict[str, float]], lr: float) -> str:
    run_id = store.create_run("tiny", "fit", {"lr": lr, "seed": 0}, seed=0)
    for subject, metrics in subject_values.items():
        for metric, value in metrics.items():
            store.add_evaluation(run_id, subject, metric, value)
            store.add_evaluation(run_id, subject, metric, value + 50.0, case="case_1")  # per-case: ignored
    store.update_run(run_id, status="completed")
    return run_id


def test_pareto_tab_plots_run_level_results_and_finds_the_front(qtbot, wb_session, tmp_path):
    from workbench.gui.runs_view import CompareDialog

    store = wb_session.store
    a = _run(store, {"student": {"accuracy": 0.80, "latency_ms": 2.0}, "teacher": {"accuracy": 0.90, "latency_ms": 40.0}}, 0.1)
    b = _run(store, {"student": {"accuracy": 0.85, "latency_ms": 3.0}}, 0.01)
    c = _run(store, {"student": {"accuracy": 0.70, "latency_ms": 5.0}}, 0.001)  # dominated by both students
    dialog = CompareDialog(wb_session, [a, b, c])
    qtbot.addWidget(dialog)
    panel = dialog.view.pareto
    assert panel.quality.currentText() == "accuracy" and panel.cost.currentText() == "latency_ms"
    pts, labels = panel.points()
    assert sorted(pts) == [(2.0, 0.80), (3.0, 0.85), (5.0, 0.70), (40.0, 0.90)]  # per-case rows left out
    front_labels = [panel.plot.labels[i] for i in panel.plot.front]
    assert front_labels == [f"{a[-6:]} student", f"{b[-6:]} student", f"{a[-6:]} teacher"]
    assert "3 on the front" in panel.note.text()
    # another quality with no cost pairing leaves an explanation instead of an empty plot
    panel.cost.addItem("bytes_nowhere")
    panel.cost.setCurrentText("bytes_nowhere")
    assert panel.points() == ([], []) and "No compared run" in panel.note.text()
    dialog.view.tabs.setCurrentWidget(panel)
    dialog.resize(900, 600)
    dialog.show()
    qtbot.waitExposed(dialog)
    panel.cost.setCurrentText("latency_ms")
    dialog.grab().save(str(tmp_path / "compare_pareto.png"))
    if os.environ.get("WB_SCREENSHOTS"):
        dialog.grab().save(os.environ["WB_SCREENSHOTS"])
