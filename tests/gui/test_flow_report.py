"""The run card (workbench.core.report) and `workbench report RUN`, on a run written to the store
directly (no worker): config, flow previews, curves, footprint table, versions; self-contained."""
import json
import math

from workbench.api import Image, Preview, Scatter, Table
from workbench.core.report import previews_to_json, run_card_html, svg_lines, write_run_card


def make_run(session):
    store = session.store
    run_id = store.create_run("tiny", "fit", {"epochs": 3, "lr": 0.05, "device": "cpu"}, 0)
    store.update_run(run_id, status="completed", versions={"torch": "9.9.9-test", "workbench": "0.0-test"})
    store.add_metrics(run_id, [(s, "train_loss", v, 0.0) for s, v in enumerate((0.9, 0.5, float("nan")))])
    store.add_metrics(run_id, [(s, "val_acc", v, 0.0) for s, v in enumerate((0.2, 0.6, 0.7))])
    for subject, params, latency in (("teacher", 4_000_000, 40.0), ("student", 10_000, 2.0)):
        store.add_evaluation(run_id, subject, "parameters", params, criteria="profile cpu")
        store.add_evaluation(run_id, subject, "latency_median_ms", latency, criteria="profile cpu")
    store.add_evaluation(run_id, "student", "accuracy", 0.71, criteria="10-fold CV")
    previews = {"data": Preview("12 clips <found>", {"clips": "12"}, [Table("Per class", ["class", "n"], [["dog", 12]])],
                                [Image("slice", [[0.0, 1.0], [2.0, 3.0]], points=[[0, 1]], origin="lower")],
                                [Scatter("proj", [0.0, 1.0, 2.0], [1.0, 0.0, 1.0], highlight=[True, False, True],
                                         labels=["a", "b", "a"])], ["x.wav: silent"])}
    folder = session.run_dir(run_id)
    folder.mkdir(parents=True)
    (folder / "flow_previews.json").write_text(json.dumps(previews_to_json(previews)))
    return run_id


def test_run_card_holds_the_record_and_fetches_nothing(wb_session):
    run_id = make_run(wb_session)
    html = run_card_html(wb_session, run_id)
    assert run_id in html and "&quot;lr&quot;" not in html and "0.05" in html
    assert "12 clips &lt;found&gt;" in html and "x.wav: silent" in html and "dog" in html  # escaped, kept
    assert html.count("<svg") >= 4  # the image, the scatter, the loss chart, the accuracy chart
    assert "teacher / student" in html and "400.0×" in html and "20.0×" in html  # footprint ratios
    assert "9.9.9-test" in html and "10-fold CV" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html


def test_svg_lines_breaks_at_nan_and_scales():
    svg = svg_lines({"loss": ([0, 1, 2, 3], [1.0, math.nan, 0.5, 0.25])}, "losses")
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # one point before the gap
    assert svg_lines({"x": ([0], [math.nan])}, "empty") == ""


def test_cli_report_writes_the_card(wb_session, wb_home, tmp_path, capsys):
    from workbench.cli.main import main

    run_id = make_run(wb_session)
    assert main(["report", run_id, "-o", str(tmp_path / "card.html")]) == 0
    assert "run card written" in capsys.readouterr().out and run_id in (tmp_path / "card.html").read_text()
    assert main(["report", "no-such-run"]) == 2
    default = write_run_card(wb_session, run_id)
    assert default == wb_session.run_dir(run_id) / "run_card.html" and default.is_file()
