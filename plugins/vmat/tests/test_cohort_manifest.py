"""Cohort manifests, the named input errors, split assignment, PNG output (fast, no DICOM engine)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from workbench.api import InputError
from workbench_vmat.compute.cohort import (
    CohortSettings,
    DoseOutsideCTError,
    FrameOfReferenceMismatch,
    InvalidDoseError,
    ManifestError,
    MissingFileError,
    assign_splits,
    check_dose,
    check_frames,
    cohort_key,
    read_cohort,
    render_dose_png,
    write_manifest,
    write_png,
)


def _touch_case(root: Path, cid: str) -> dict:
    (root / cid / "ct").mkdir(parents=True)
    (root / cid / "ct" / "CT.0.dcm").write_bytes(b"")
    for name in ("rtdose_input.dcm", "rtdose_reference.dcm", "rtstruct.dcm"):
        (root / cid / name).write_bytes(b"")
    return {"id": cid, "split": "train", "ct": f"{cid}/ct", "input_dose": f"{cid}/rtdose_input.dcm",
            "reference_dose": f"{cid}/rtdose_reference.dcm", "rtstruct": f"{cid}/rtstruct.dcm"}


def test_manifest_round_trip_toml(tmp_path):
    rows = [_touch_case(tmp_path, "case_000"), {**_touch_case(tmp_path, "case_001"), "split": "test"}]
    path = write_manifest(tmp_path, rows, {"name": "demo", "seed": 3, "spacing_mm": 4.0})
    cohort = read_cohort(tmp_path)
    assert cohort.manifest == path and cohort.meta["seed"] == 3
    assert [c.id for c in cohort.cases] == ["case_000", "case_001"]
    assert cohort.case("case_001").split == "test" and [c.id for c in cohort.split("train")] == ["case_000"]
    assert cohort.cases[0].ct == (tmp_path / "case_000" / "ct").resolve()
    assert cohort.cases[0].rtstruct.name == "rtstruct.dcm"


def test_manifest_csv(tmp_path):
    row = _touch_case(tmp_path, "p1")
    (tmp_path / "cohort.csv").write_text("id,split,ct,input_dose,reference_dose,rtstruct\n"
                                         f"p1,val,{row['ct']},{row['input_dose']},{row['reference_dose']},\n")
    cohort = read_cohort(tmp_path / "cohort.csv")
    assert cohort.cases[0].split == "val" and cohort.cases[0].rtstruct is None


def test_missing_file_is_named(tmp_path):
    row = _touch_case(tmp_path, "case_000")
    (tmp_path / row["reference_dose"]).unlink()
    write_manifest(tmp_path, [row])
    with pytest.raises(MissingFileError) as exc:
        read_cohort(tmp_path)
    assert isinstance(exc.value, InputError)
    assert exc.value.path.endswith("rtdose_reference.dcm") and "reference dose" in exc.value.problem
    with pytest.raises(MissingFileError):
        read_cohort(tmp_path / "elsewhere")


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(split="holdout"), "split"),
    (lambda r: r.pop("input_dose"), "missing 'input_dose'"),
])
def test_malformed_manifest(tmp_path, mutate, message):
    row = _touch_case(tmp_path, "case_000")
    mutate(row)
    write_manifest(tmp_path, [row])
    with pytest.raises(ManifestError, match=message):
        read_cohort(tmp_path)


def test_duplicate_ids_and_garbage(tmp_path):
    row = _touch_case(tmp_path, "case_000")
    write_manifest(tmp_path, [row, dict(row)])
    with pytest.raises(ManifestError, match="duplicate"):
        read_cohort(tmp_path)
    (tmp_path / "cohort.toml").write_text("[[cases]\nid = ")
    with pytest.raises(ManifestError, match="cannot parse"):
        read_cohort(tmp_path)


def test_frame_of_reference_checks():
    check_frames("ct", "1.2.3", "dose.dcm", "1.2.3")
    with pytest.raises(FrameOfReferenceMismatch, match="1.2.4"):
        check_frames("ct", "1.2.3", "dose.dcm", "1.2.4")
    with pytest.raises(FrameOfReferenceMismatch, match="no FrameOfReferenceUID"):
        check_frames("ct", "1.2.3", "dose.dcm", None)


def test_dose_value_checks():
    good = np.ones((4, 5, 6), np.float32)
    check_dose("d.dcm", good)
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InvalidDoseError, match="NaN"):
        check_dose("d.dcm", bad)
    bad = good.copy()
    bad[1, 1, 1] = -0.5
    with pytest.raises(InvalidDoseError, match="negative"):
        check_dose("d.dcm", bad)
    with pytest.raises(InvalidDoseError, match="zero everywhere"):
        check_dose("d.dcm", np.zeros((2, 2, 2)))


def test_dose_grid_outside_ct():
    from workbench_vmat.compute.volume import Volume

    ct = Volume(np.zeros((26, 51, 51)), origin=(-100.0, -100.0, -50.0), spacing=(4.0, 4.0, 4.0))
    dose = np.ones((10, 10, 10), np.float32)  # [z, y, x]
    inside = Volume(dose, origin=(-20.0, -20.0, -20.0), spacing=(4.0, 4.0, 4.0))
    check_dose("d.dcm", dose, dose_volume=inside, ct_volume=ct)
    edge = Volume(dose, origin=(-101.0, -20.0, -20.0), spacing=(4.0, 4.0, 4.0))  # within half a voxel
    check_dose("d.dcm", dose, dose_volume=edge, ct_volume=ct)
    with pytest.raises(DoseOutsideCTError, match="column"):
        check_dose("d.dcm", dose, dose_volume=Volume(dose, origin=(90.0, -20.0, -20.0), spacing=(4.0, 4.0, 4.0)),
                   ct_volume=ct)
    with pytest.raises(DoseOutsideCTError, match="slice"):
        check_dose("d.dcm", dose, dose_volume=Volume(dose, origin=(-20.0, -20.0, -80.0), spacing=(4.0, 4.0, 4.0)),
                   ct_volume=ct)


def test_splits_and_cache_key():
    labels = assign_splits(8, seed=0)
    assert sorted(labels) == sorted(["train"] * 6 + ["val"] + ["test"])
    assert assign_splits(8, seed=0) == labels and assign_splits(20, seed=1).count("test") == 3
    a, b = CohortSettings(seed=1), CohortSettings(seed=2)
    assert cohort_key(a) == cohort_key(CohortSettings(seed=1)) != cohort_key(b)
    assert cohort_key(a).startswith("demo-8c-4mm-seed1-monte-carlo-")


def _read_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(tag + body) & 0xFFFFFFFF == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if tag == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_png_writer_and_dose_slice(tmp_path):
    img = np.zeros((3, 4, 3), np.uint8)
    img[1, 2] = (255, 10, 20)
    back = _read_png(write_png(tmp_path / "a.png", img))
    assert np.array_equal(back, img)
    hu = np.full((20, 20), -1000, np.int16)
    hu[4:16, 3:17] = 40
    dose = np.zeros((20, 20), np.float32)
    dose[8:12, 8:12] = 2.0
    ptv = dose > 0
    out = _read_png(render_dose_png(tmp_path / "b.png", hu, dose, 2.0, outlines={"PTV": ptv}, scale=3))
    assert out.shape[1] == 60 and out.shape[0] > 60
    assert out[30, 30, 0] > out[30, 30, 2]  # hot in the middle (red end of the colour map)
    assert out[2, 2].max() < 10  # air stays black


def test_resolve_settings_presets():
    from workbench_vmat.configs import CohortConfig
    from workbench_vmat.pipelines.cohort import resolve_settings

    demo = resolve_settings(CohortConfig())
    assert (demo.cases, demo.spacing_mm, demo.reference, demo.histories) == (8, 4.0, "monte-carlo", 10_000_000)
    paper = resolve_settings(CohortConfig(preset="paper"), seed=1)
    assert paper.cases == 30 and paper.spacing_mm == 3.0 and paper.splits.count("test") == 10
    assert paper.splits.count("train") == 20 and paper.denoise_sigma_mm == 0
    assert resolve_settings(CohortConfig(reference="pencil-beam")).histories == 0
    assert demo.key() != resolve_settings(CohortConfig(seed=1)).key()


# -- a tiny case written with the plugin's DICOM writers, read back through load_case -----------

def _tiny_case(tmp_path: Path, *, dose_frame: str | None = None, dose_origin=None, zero_dose: bool = False):
    from workbench_vmat.compute import dicom_io as io
    from workbench_vmat.compute.cohort import CaseFiles

    hu = np.full((4, 8, 8), -1000, np.int16)
    hu[:, 2:6, 2:6] = 40
    ct = io.Volume(hu, origin=(-14.0, -14.0, -6.0), spacing=(4.0, 4.0, 4.0), frame_of_reference_uid="1.2.826.0.1.1",
                   meta={"patient_id": "T"})
    io.write_ct_series(tmp_path / "ct", ct)
    dose = np.zeros(hu.shape, np.float32) if zero_dose else np.where(hu > 0, 2.0, 0.1).astype(np.float32)
    for name in ("in", "ref"):
        vol = io.Volume(dose, origin=dose_origin or ct.origin, spacing=ct.spacing,
                        frame_of_reference_uid=dose_frame or ct.frame_of_reference_uid, meta=dict(ct.meta))
        io.write_rtdose(tmp_path / f"{name}.dcm", vol)
    io.write_rtstruct(tmp_path / "rs.dcm", ct, {"BODY": hu > 0})
    return CaseFiles("t", "test", tmp_path / "ct", tmp_path / "in.dcm", tmp_path / "ref.dcm", tmp_path / "rs.dcm")


def test_load_case_reads_and_validates(tmp_path):
    from workbench_vmat.compute.cohort import load_case

    case = load_case(_tiny_case(tmp_path))
    assert case.reference_dose.shape == (4, 8, 8) and case.reference_dose.max() == pytest.approx(2.0, rel=1e-4)
    assert case.structures["BODY"].sum() == 4 * 16


def test_load_case_named_errors(tmp_path):
    from workbench_vmat.compute.cohort import load_case

    with pytest.raises(FrameOfReferenceMismatch):
        load_case(_tiny_case(tmp_path / "a", dose_frame="1.2.826.0.1.2"))
    with pytest.raises(DoseOutsideCTError):
        load_case(_tiny_case(tmp_path / "b", dose_origin=(10.0, -14.0, -6.0)))
    with pytest.raises(InvalidDoseError, match="zero"):
        load_case(_tiny_case(tmp_path / "c", zero_dose=True))
    files = _tiny_case(tmp_path / "d")
    (tmp_path / "d" / "rs.dcm").unlink()
    with pytest.raises(MissingFileError, match="RTSTRUCT"):
        load_case(files)
