"""The VMAT views on a synthetic run: the dose slice viewer and the evaluation view."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import vmat_predictions_data as D

from workbench.api import InputError

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vmat_views")
    evaluation, predictions = D.write_run(run_dir, cases=2)
    arts = [{"kind": "vmat-case-doses", "path": str(p)} for p in sorted(predictions.glob("*.npz"))]
    arts.append({"kind": "vmat-evaluation", "path": str(evaluation)})
    return run_dir, arts


def test_dose_viewer_modes_orientations_and_profiles(qtbot, run, tmp_path):
    from workbench_vmat.views import dose_viewer

    _, arts = run
    v = dose_viewer({"id": "r1"}, [a for a in arts if a["kind"] == "vmat-case-doses"])
    qtbot.addWidget(v)
    v.resize(1000, 820)
    v.show()
    case = D.synthetic_case(seed=0)
    assert [v.case_box.itemText(i) for i in range(v.case_box.count())] == ["case_00", "case_01"]
    assert v.dose_box.currentText() == "student"
    assert {v.dose_box.itemText(i) for i in range(v.dose_box.count())} == {
        "reference", "student", "teacher", "student-only", "input (dose in water)"}
    # opens through the target's centre, with the student's dose and isodose lines
    ptv_centre = np.argwhere(case["mask_PTV"]).mean(0).round().astype(int)
    assert v.point == tuple(ptv_centre) and v.viewer.index == ptv_centre[0]
    np.testing.assert_array_equal(v.viewer.current_overlay_slice(), case["student"][ptv_centre[0]])
    assert [c.level for c in v.viewer.isocurves] == pytest.approx([0.5 * D.RX, 0.8 * D.RX, 0.95 * D.RX, D.RX, 1.05 * D.RX])
    v.viewer.graphics.grab().save(str(tmp_path / "dose.png"))

    # difference: prediction - reference, blank below the cutoff
    v.set_display("difference to reference", "teacher")
    over = v.viewer.current_overlay_slice()
    ref = case["reference"][v.viewer.index]
    hot = ref > 0.5 * D.RX
    np.testing.assert_allclose(over[hot], (case["teacher"][v.viewer.index] - ref)[hot], atol=1e-5)
    assert np.isnan(over[ref < 0.05 * ref.max()]).all()

    # gamma: computed once, failing points > 1, pass rate as evaluate_case reports it
    v.set_display("gamma 2%/2mm", "student-only")
    g = v.gamma_volume("student_only")
    assert v.gamma_volume("student_only") is g
    from workbench_vmat.compute.evaluation import evaluate_case
    rate = evaluate_case(case["reference"], case["student_only"], D.SPACING, prescription_gy=D.RX)["gamma_2_2"]
    assert f"{rate:.2f} %" in v.info.text()
    assert np.nanmax(g) > 1.0 and np.array_equal(v.viewer.current_overlay_slice(), g[v.viewer.index], equal_nan=True)
    v.grab().save(str(tmp_path / "gamma.png"))

    # a click sets the profile point; profiles of every dose along the chosen axis
    v.set_display("dose", "student")
    v.viewer.set_orientation("coronal")
    v.set_point_in_slice(row=5, col=7)  # coronal: row = z, column = x, slice = y
    assert v.point == (5, v.viewer.index, 7)
    v.axis_box.setCurrentText("superior–inferior (z)")
    np.testing.assert_array_equal(v.profile_curves["reference"], case["reference"][:, v.viewer.index, 7])
    assert set(v.profile_curves) == {"reference", "student", "teacher", "student_only", "dose_water"}
    assert v.profile_positions[0] == pytest.approx(case["origin_mm"][2])
    assert np.diff(v.profile_positions) == pytest.approx(D.SPACING[0])
    # the path is drawn in the coronal plane as a vertical line through column 7
    xs, ys = v.path_item.getData()
    assert np.allclose(xs, (7 + 0.5) * D.SPACING[2])
    v.axis_box.setCurrentText("anterior–posterior (y)")  # perpendicular to the coronal plane: no path
    assert len(v.path_item.getData()[0] or []) == 0
    np.testing.assert_array_equal(v.profile_curves["student"], case["student"][5, :, 7])

    v.set_case("case_01")
    assert v.case["case"] == "case_01" and v.dose_box.currentText() == "student"


def test_evaluation_view_tables_and_pareto(qtbot, run, tmp_path):
    import json

    from workbench_vmat.views import evaluation_view

    run_dir, arts = run
    w = evaluation_view({"id": "r1"}, arts)
    qtbot.addWidget(w)
    w.resize(1100, 520)
    w.show()
    ev = json.loads((run_dir / "evaluation.json").read_text())
    assert w.subjects == ["input", "teacher", "student", "student_only"]
    s = ev["subjects"]["student"]["summary"]["gamma_2_2"]
    assert w.summary.item(2, 0).text() == f"{s['mean']:.2f} ± {s['sd']:.2f}"
    assert w.summary.verticalHeaderItem(3).text() == "student-only"
    # per case: the chosen metric for every case and subject, then mean and sd
    w.set_metric("dvh/PTV/D95_error")
    v = ev["subjects"]["teacher"]["per_case"]["case_01"]["dvh/PTV/D95_error"]
    assert w.per_case.item(1, 1).text() == f"{v:.3f}"
    assert w.per_case.verticalHeaderItem(2).text() == "mean"
    # pass rate vs CPU latency: teacher, student and student-only (at the student's cost)
    w.cost_box.setCurrentText("latency_cpu_ms")
    assert [t.textItem.toPlainText() for t in w.pareto.text_items] == ["teacher", "student (KD)", "student-only"]
    assert w.pareto.points[0] == (936.0, pytest.approx(ev["subjects"]["teacher"]["summary"]["gamma_2_2"]["mean"]))
    assert w.pareto.points[2][0] == 374.0
    w.grab().save(str(tmp_path / "evaluation.png"))


def test_views_name_what_is_missing(qtbot, tmp_path):
    from workbench_vmat.views import dose_viewer, evaluation_view

    with pytest.raises(InputError, match="no 'vmat-case-doses' artifact"):
        dose_viewer({"id": "r9"}, [])
    with pytest.raises(InputError, match="predictions file not found"):
        dose_viewer({"id": "r9"}, [{"kind": "vmat-case-doses", "path": str(tmp_path / "gone.npz")}])
    bad = tmp_path / "evaluation.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="subjects"):
        evaluation_view({"id": "r9"}, [{"kind": "vmat-evaluation", "path": str(bad)}])


def test_run_detail_opens_the_views_from_the_manifest(qtbot, run, wb_home):
    """The GUI finds both views through the plugin's ViewSpecs and builds them from stored artifacts."""
    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session
    from workbench.gui.run_detail import RunDetail
    from workbench_vmat.manifest import plugin
    from workbench_vmat.views import DoseViewer, EvaluationView

    _, arts = run
    session = Session.open(wb_home, PluginManager.from_plugins(plugin))
    try:
        rid = session.store.create_run("vmat", "distill", {}, 0)
        for a in arts:
            session.store.add_artifact(rid, a["kind"], a["path"], os.path.getsize(a["path"]), "")
        detail = RunDetail(session)
        qtbot.addWidget(detail)
        detail.show_run(rid)
        assert [detail.tabText(i) for i in range(detail.count())] == ["Record", "Dose viewer", "Evaluation"]
        doses = detail.open_view("vmat.doses")
        assert isinstance(doses, DoseViewer) and doses.case_box.count() == 2
        assert isinstance(detail.open_view("vmat.evaluation"), EvaluationView)
    finally:
        session.store.close()
