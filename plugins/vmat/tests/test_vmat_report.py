"""The run report: a self-contained HTML written headless from a run's artifacts."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import vmat_predictions_data as D

from workbench.api import InputError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vmat_run")
    evaluation, predictions = D.write_run(run_dir, cases=2)
    return run_dir, evaluation, predictions


def test_report_is_self_contained_and_written_without_qt(run, tmp_path):
    run_dir, evaluation, predictions = run
    curves = {"train/loss": [[i, 1.0 / (i + 1)] for i in range(20)],
              "val/gamma_2_2": {"step": [0, 10, 19], "value": [70.0, 95.0, 98.5]}}
    code = (
        "import json, sys\n"
        "from workbench_vmat.report import write_report\n"
        f"p = write_report({str(run_dir)!r}, {str(evaluation)!r}, {str(predictions)!r}, curves=json.loads(sys.argv[1]), "
        f"png_dir={str(tmp_path / 'png')!r}, slice_cases=1)\n"
        "print(p)\n"
        "print('QT', any(m.startswith(('PySide6', 'pyqtgraph', 'workbench.gui')) for m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "QtAgg"  # must not matter: the report draws on Agg canvases only
    out = subprocess.run([sys.executable, "-c", code, json.dumps(curves)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    path, qt = out.stdout.split("\n")[:2]
    assert qt == "QT False"
    html = Path(path).read_text()
    assert Path(path) == run_dir / "report.html"

    # self-contained: every image is an embedded PNG, nothing is fetched
    assert not re.search(r"(src|href)=['\"](?!data:)", html)
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    # pass rates, curves, slices of the first case, its DVHs
    assert len(images) == 4
    for data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "curves.png", "dvh_case_00.png", "pass_rates.png", "slices_case_00.png"]

    # the headline table carries the evaluation's mean ± sd per subject
    ev = json.loads(evaluation.read_text())
    for subject in ("input", "teacher", "student", "student_only"):
        s = ev["subjects"][subject]["summary"]["gamma_2_2"]
        assert f"{s['mean']:.2f} ± {s['sd']:.2f}" in html
        case = ev["subjects"][subject]["per_case"]["case_01"]["gamma_1_1"]
        assert f"<td>{case:.2f}</td>" in html
    for text in ("γ 2%/2mm (%)", "γ 3%/3mm (%)", "γ 1%/1mm (%)", "MAE high dose", "student-only", "Footprint",
                 "11.27×", "12.40 M", "PTV", "D95", "Training curves", "numpy", "case_01"):
        assert text in html, text


def test_report_errors_name_the_missing_input(run, tmp_path):
    from workbench_vmat.report import case_figure, write_report
    from workbench_vmat.compute.evaluation import load_case_doses

    run_dir, evaluation, predictions = run
    with pytest.raises(InputError, match="predictions folder not found"):
        write_report(tmp_path, evaluation, tmp_path / "nope")
    with pytest.raises(InputError, match="evaluation file not found"):
        write_report(tmp_path, tmp_path / "evaluation.json", predictions)
    case = load_case_doses(predictions / "case_00.npz")
    del case["doses"]["teacher"]
    with pytest.raises(ValueError, match="no 'teacher' dose"):
        case_figure(case, "teacher")
    # a figure with what is there: reference, student, input, difference, gamma
    fig = case_figure(case, "student", orientations=("axial",))
    assert len([a for a in fig.axes if a.get_title()]) == 5
    assert np.isfinite(fig.get_size_inches()).all()
