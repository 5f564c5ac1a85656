"""Evaluation of predicted doses: gamma pass rates, high-dose MAE, DVH metrics, summaries,
and the run artifacts (predictions .npz, evaluation.json) the report and views read."""
from __future__ import annotations

import json

import numpy as np
import pytest
import vmat_predictions_data as D

from workbench.api import InputError
from workbench_vmat.compute.dvh import dvh_metrics
from workbench_vmat.compute.evaluation import (evaluate_case, gamma_map, load_case_doses, ordered_subjects,
                                               read_evaluation, summarise)
from workbench_vmat.compute.gamma import gamma


@pytest.fixture(scope="module")
def case():
    return D.synthetic_case(seed=0)


def _structures(case):
    return {k[5:]: v for k, v in case.items() if k.startswith("mask_")}


def test_identical_doses_agree_perfectly(case):
    m = evaluate_case(case["reference"], case["reference"], D.SPACING, structures=_structures(case), prescription_gy=D.RX)
    assert m["gamma_2_2"] == m["gamma_3_3"] == m["gamma_1_1"] == 100.0
    assert m["mae_high_dose_pct"] == 0.0 and m["mean_diff_high_dose_pct"] == 0.0
    for name in ("PTV", "Rectum", "Bladder"):
        for stat in ("D95", "Dmean", "D2"):
            assert m[f"dvh/{name}/{stat}_error"] == 0.0
    ptv = dvh_metrics(case["reference"], case["mask_PTV"], D.SPACING)
    assert m["dvh/PTV/D95"] == pytest.approx(ptv["D95"]) and m["dvh/PTV/D2"] > m["dvh/PTV/D95"]


def test_a_uniform_offset_gives_the_expected_figures(case):
    ref = case["reference"]
    body = case["ct"] > -500
    pred = ref + 0.9 * body  # +0.9 Gy = 1.29 % of the 70 Gy prescription
    m = evaluate_case(ref, pred, D.SPACING, structures=_structures(case), prescription_gy=D.RX)
    assert m["mae_high_dose_pct"] == pytest.approx(100 * 0.9 / D.RX, rel=1e-4)
    assert m["mean_diff_high_dose_pct"] == pytest.approx(100 * 0.9 / D.RX, rel=1e-4)
    assert m["gamma_2_2"] == 100.0 and m["gamma_3_3"] == 100.0  # within the dose criterion everywhere
    # 1 % = 0.7 Gy: the flat high-dose core fails (no dose within 1 mm is 0.9 Gy higher there)
    assert m["gamma_1_1"] < 100.0
    g11 = gamma_map(ref, pred, D.SPACING, 1, 1, prescription_gy=D.RX)
    slope = np.sqrt(sum(g**2 for g in np.gradient(ref.astype(np.float64), *D.SPACING)))  # Gy/mm
    core = (ref >= 0.8 * D.RX) & (slope < 0.1)  # within 1 mm the dose moves < 0.1 Gy: 0.9 Gy stays > 0.7
    assert core.sum() >= 10 and np.all(g11[core] > 1.0)
    assert 100.0 * np.count_nonzero(g11 <= 1) / np.count_nonzero(~np.isnan(g11)) == pytest.approx(m["gamma_1_1"])
    assert m["dvh/PTV/Dmean_error"] == pytest.approx(0.9, abs=1e-4)
    assert m["dvh/PTV/D95_error"] == pytest.approx(0.9, abs=1e-3)


def test_pass_rates_are_those_of_the_gamma_module(case):
    ref, pred = case["reference"], case["student_only"]
    m = evaluate_case(ref, pred, D.SPACING)  # no prescription: % of the reference maximum
    direct = gamma(ref, pred, spacing=D.SPACING, dd=2, dta=2, cutoff=10, max_gamma=2.0)
    assert m["gamma_2_2"] == pytest.approx(direct.pass_rate)
    assert not any(k.startswith("dvh/") for k in m)
    g = gamma_map(ref, pred, D.SPACING)
    assert g.shape == ref.shape and g.dtype == np.float32
    assert np.all(np.isnan(g[ref < 0.1 * ref.max()]))
    assert np.nanmax(g) <= 2.0 + 1e-6
    assert 100.0 * np.count_nonzero(g <= 1) / np.count_nonzero(~np.isnan(g)) == pytest.approx(m["gamma_2_2"])
    # a tighter criterion never passes more points
    assert m["gamma_1_1"] <= m["gamma_2_2"] <= m["gamma_3_3"]


def test_better_predictions_score_better(case):
    ref = case["reference"]
    rates = {k: evaluate_case(ref, case[k], D.SPACING, prescription_gy=D.RX)["gamma_2_2"]
             for k in ("dose_water", "student_only", "student", "teacher")}
    assert rates["dose_water"] < rates["student_only"] < rates["student"] <= rates["teacher"]


def test_bad_inputs_are_named(case):
    ref = case["reference"]
    with pytest.raises(ValueError, match="shape"):
        evaluate_case(ref, ref[:-1], D.SPACING)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_case(ref, np.where(ref > 60, np.nan, ref), D.SPACING)
    with pytest.raises(ValueError, match="structure 'PTV'"):
        evaluate_case(ref, ref, D.SPACING, structures={"PTV": case["mask_PTV"][:, :-1]})
    with pytest.raises(ValueError, match="prescription"):
        evaluate_case(ref, ref, D.SPACING, prescription_gy=-1)
    # an empty structure has no DVH metrics
    m = evaluate_case(ref, ref, D.SPACING, structures={"Empty": np.zeros(ref.shape, bool)})
    assert not any(k.startswith("dvh/Empty") for k in m)


def test_summarise():
    per_case = {"a": {"gamma_2_2": 98.0, "x": 1.0}, "b": {"gamma_2_2": 99.0, "x": float("nan")},
                "c": {"gamma_2_2": 100.0}}
    s = summarise(per_case)
    assert s["gamma_2_2"] == {"mean": pytest.approx(99.0), "sd": pytest.approx(1.0), "n": 3}
    assert s["x"] == {"mean": 1.0, "sd": 0.0, "n": 1}
    json.dumps(s)  # JSON-ready


def test_run_artifacts_round_trip(tmp_path, case):
    path = tmp_path / "predictions" / "case_07.npz"
    path.parent.mkdir()
    np.savez_compressed(path, **case)
    c = load_case_doses(path)
    assert c["case"] == "case_07" and c["prescription_gy"] == D.RX
    assert set(c["doses"]) == {"reference", "dose_water", "student", "teacher", "student_only"}
    assert set(c["structures"]) == {"PTV", "Rectum", "Bladder"} and c["structures"]["PTV"].dtype == bool
    assert c["spacing_mm"] == D.SPACING
    np.testing.assert_array_equal(c["doses"]["student"], case["student"])

    broken = tmp_path / "broken.npz"
    np.savez(broken, ct=case["ct"], spacing_mm=np.array(D.SPACING))
    with pytest.raises(InputError, match="missing array 'reference'") as err:
        load_case_doses(broken)
    assert str(err.value.path) == str(broken)
    np.savez(broken, ct=case["ct"], reference=case["reference"][1:], spacing_mm=np.array(D.SPACING))
    with pytest.raises(InputError, match="shape"):
        load_case_doses(broken)
    broken.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_case_doses(broken)

    ev = tmp_path / "evaluation.json"
    ev.write_text(json.dumps({"subjects": {"student": {"per_case": {"a": {"gamma_2_2": 97.0}}}}}))
    data = read_evaluation(ev)
    assert data["subjects"]["student"]["summary"]["gamma_2_2"]["mean"] == 97.0 and data["footprint"] == {}
    ev.write_text("{")
    with pytest.raises(InputError, match="JSON"):
        read_evaluation(ev)
    ev.write_text("[]")
    with pytest.raises(InputError, match="subjects"):
        read_evaluation(ev)
    assert ordered_subjects(["student", "zeta", "input", "teacher"]) == ["input", "teacher", "student", "zeta"]
