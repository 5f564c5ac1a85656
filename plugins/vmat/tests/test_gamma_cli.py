"""``workbench vmat gamma``: two RTDOSE files in, pass rate out."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import vmat_testdata as T
from workbench_vmat.cli import main
from workbench_vmat.compute import dicom_io as io
from workbench_vmat.compute.gamma import gamma
from workbench_vmat.compute.volume import Volume

FRAME = "1.2.826.0.1.3680043.8.498.3333"


@pytest.fixture()
def dose_files(tmp_path):
    """Reference on a 2.5 mm grid, evaluation (perturbed) on an offset 2 mm grid."""
    ref_vol = Volume(np.zeros((14, 16, 18), np.float32), origin=(-20.0, -18.0, -16.0), spacing=(2.5, 2.5, 2.5),
                     frame_of_reference_uid=FRAME)
    ev_vol = Volume(np.zeros((18, 20, 22), np.float32), origin=(-21.3, -19.1, -17.7), spacing=(2.0, 2.0, 2.0),
                    frame_of_reference_uid=FRAME)
    ext = [a[-1] - a[0] for a in ref_vol.frame_axes()]
    # vmat_dose works in (z, y, x) coordinates; centre both on the reference grid's centre
    centre = [float(np.mean(a)) for a in ref_vol.frame_axes()]
    ref = T.vmat_dose([a - c for a, c in zip(ref_vol.frame_axes(), centre)], extent=ext)
    ev = T.vmat_dose([a - c for a, c in zip(ev_vol.frame_axes(), centre)], extent=ext, seed=4, **T.KINDS["mixed"])
    ref_path = io.write_rtdose(tmp_path / "ref.dcm", ref_vol.with_array(ref.astype(np.float32)))
    ev_path = io.write_rtdose(tmp_path / "eval.dcm", ev_vol.with_array(ev.astype(np.float32)))
    return ref_path, ev_path


def test_json_output_matches_the_library(dose_files, capsys):
    ref_path, ev_path = dose_files
    code = main(["gamma", str(ref_path), str(ev_path), "--dd", "2", "--dta", "2", "--cutoff", "10", "--json"], None)
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    ref, ev = io.read_rtdose(ref_path), io.read_rtdose(ev_path)
    direct = gamma(ref.array, ev.array, axes_reference=ref.frame_axes(), axes_evaluation=ev.frame_axes(), device="cpu")
    assert out["pass_rate"] == pytest.approx(direct.pass_rate)
    assert out["n_evaluated"] == direct.n_evaluated > 0
    assert 0 < out["pass_rate"] <= 100
    assert out["dd_percent"] == 2 and out["dta_mm"] == 2 and out["cutoff_percent"] == 10
    assert out["reference"] == str(ref_path) and out["evaluation"] == str(ev_path)


def test_options_reach_the_analysis(dose_files, capsys, tmp_path):
    ref_path, ev_path = dose_files
    results = {}
    for label, extra in (("2/2", []), ("1/1", ["--dd", "1", "--dta", "1"]), ("local", ["--local"]),
                         ("cut50", ["--cutoff", "50"])):
        assert main(["gamma", str(ref_path), str(ev_path), "--json", *extra], None) == 0
        results[label] = json.loads(capsys.readouterr().out)
    assert results["1/1"]["pass_rate"] < results["2/2"]["pass_rate"]
    assert results["local"]["local"] is True
    assert results["local"]["mean_gamma"] != pytest.approx(results["2/2"]["mean_gamma"], abs=1e-3)
    assert results["cut50"]["n_evaluated"] < results["2/2"]["n_evaluated"]
    gmap = tmp_path / "g.npy"
    assert main(["gamma", str(ref_path), str(ev_path), "--max-gamma", "1.5", "--interp-fraction", "5",
                 "--save-map", str(gmap)], None) == 0
    g = np.load(gmap)
    assert np.nanmax(g) <= 1.5 and np.count_nonzero(~np.isnan(g)) == results["2/2"]["n_evaluated"]


def test_text_output(dose_files, capsys):
    ref_path, ev_path = dose_files
    assert main(["gamma", str(ref_path), str(ev_path)], None) == 0
    text = capsys.readouterr().out
    assert "pass rate:" in text and "points evaluated" in text and str(ref_path) in text


def test_bad_inputs_exit_2_and_name_the_file(dose_files, tmp_path, capsys):
    ref_path, ev_path = dose_files
    missing = tmp_path / "nope.dcm"
    assert main(["gamma", str(ref_path), str(missing)], None) == 2
    assert str(missing) in capsys.readouterr().err
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"hello")
    assert main(["gamma", str(junk), str(ev_path)], None) == 2
    err = capsys.readouterr().err
    assert str(junk) in err and "not a DICOM" in err
    other = io.read_rtdose(ev_path)
    other.frame_of_reference_uid = "1.2.3.999"
    other_path = io.write_rtdose(tmp_path / "other_frame.dcm", other)
    assert main(["gamma", str(ref_path), str(other_path), "--json"], None) == 2
    err = capsys.readouterr().err
    assert str(other_path) in err and "frame of reference" in err


def test_usage_errors_and_help(capsys):
    assert main(["gamma", "a.dcm", "b.dcm", "--dd", "-1"], None) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["gamma", "a.dcm"], None) == 2
    capsys.readouterr()
    assert main([], None) == 2
    capsys.readouterr()
    assert main(["--help"], SimpleNamespace(prog="workbench vmat", home=None)) == 0
    assert "gamma" in capsys.readouterr().out
    assert main(["gamma", "--help"], SimpleNamespace(prog="wb vmat", home=None)) == 0
    assert "wb vmat gamma" in capsys.readouterr().out


def test_importing_the_cli_is_cheap():
    code = "import sys, workbench_vmat.cli; print(sorted(m for m in ('torch', 'pydicom', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
