"""DICOM I/O: round trips, pydicom's sample files, and every malformed input we reject."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from workbench.api import InputError
from workbench_vmat.compute import dicom_io as io
from workbench_vmat.compute.volume import Volume

FRAME = "1.2.826.0.1.3680043.8.498.1111"
OTHER_FRAME = "1.2.826.0.1.3680043.8.498.2222"


def make_ct(shape=(6, 20, 24), spacing=(2.5, 1.5, 1.25), origin=(-15.0, -14.0, -40.0), orientation=io.AXIAL, seed=0):
    rng = np.random.default_rng(seed)
    hu = np.round(rng.uniform(-1000, 1500, size=shape)).astype(np.float32)
    hu[0, 0, :4] = [-1024, -1000, 0, 3000]
    return Volume(hu, origin, spacing, orientation, frame_of_reference_uid=FRAME,
                  meta={"patient_name": "Test^Phantom", "patient_id": "P001"})


@pytest.fixture()
def ct_folder(tmp_path):
    ct = make_ct()
    files = io.write_ct_series(tmp_path / "ct", ct)
    return tmp_path / "ct", ct, files


def linear_dose(vol: Volume, coef=(0.3, -0.2, 0.25), base=20.0):
    """Dose = base + coef . patient position (mm) at the voxel centres of ``vol``."""
    k, i, j = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij")
    world = vol.index_to_world(np.stack([k, i, j], -1))
    return (base + world @ np.asarray(coef)).astype(np.float32)


# -- CT -----------------------------------------------------------------------------------
def test_ct_series_round_trip_in_any_file_order(ct_folder, tmp_path):
    folder, ct, files = ct_folder
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    names = [f"IMG{n:03d}" for n in random.Random(1).sample(range(100), len(files))]
    for f, name in zip(files, names):  # no suffix, random order
        shutil.copy(f, shuffled / name)
    (shuffled / "README.txt").write_text("not DICOM")
    back = io.read_ct_series(shuffled)
    assert back.shape == ct.shape
    np.testing.assert_array_equal(back.array, ct.array)
    np.testing.assert_allclose(back.origin, ct.origin, atol=1e-4)
    np.testing.assert_allclose(back.spacing, ct.spacing, atol=1e-4)
    np.testing.assert_allclose(back.orientation, ct.orientation, atol=1e-6)
    assert back.frame_of_reference_uid == FRAME
    assert back.meta["patient_id"] == "P001"
    assert back.meta["sop_instance_uids"] == ct.meta["sop_instance_uids"]  # slice order restored
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_ct_with_oblique_orientation_round_trips(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    ct = make_ct(orientation=(c, s, 0.0, 0.0, 0.0, -1.0))  # a tilted sagittal-ish stack
    io.write_ct_series(tmp_path / "obl", ct)
    back = io.read_ct_series(tmp_path / "obl")
    np.testing.assert_array_equal(back.array, ct.array)
    np.testing.assert_allclose(back.index_to_world([[5, 19, 23]]), ct.index_to_world([[5, 19, 23]]), atol=1e-3)


def test_reads_pydicom_ct_sample():
    path = get_testdata_file("CT_small.dcm")
    ct = io.read_ct_series(path)
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert ct.shape == (1, ds.Rows, ds.Columns)
    np.testing.assert_allclose(ct.array[0], expected)
    np.testing.assert_allclose(ct.origin, [float(x) for x in ds.ImagePositionPatient])
    assert ct.spacing[1:] == pytest.approx([float(x) for x in ds.PixelSpacing])
    assert ct.frame_of_reference_uid == ds.FrameOfReferenceUID


def _edit(path: Path, **changes):
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        setattr(ds, k, v)
    ds.save_as(path)


def test_gantry_tilt_is_rejected(ct_folder):
    folder, _, files = ct_folder
    _edit(files[2], GantryDetectorTilt="12.5")
    with pytest.raises(InputError, match="gantry tilt") as err:
        io.read_ct_series(folder)
    assert err.value.path == str(files[2])


def test_sheared_stack_is_rejected_as_tilt(ct_folder):
    folder, ct, files = ct_folder
    for k, f in enumerate(files):  # positions drift in y slice by slice, as a tilted gantry makes
        pos = np.asarray(ct.origin) + [0.0, 0.9 * k, k * ct.spacing[0]]
        _edit(f, ImagePositionPatient=[f"{v:.3f}" for v in pos])
    with pytest.raises(InputError, match="tilt"):
        io.read_ct_series(folder)


def test_mixed_series_is_rejected_and_can_be_chosen(ct_folder, tmp_path):
    folder, ct, files = ct_folder
    other = make_ct(seed=5)
    io.write_ct_series(tmp_path / "other", other, prefix="B")
    for f in (tmp_path / "other").iterdir():
        shutil.copy(f, folder / f.name)
    with pytest.raises(InputError, match="mixed series") as err:
        io.read_ct_series(folder)
    assert err.value.path == str(folder)
    picked = io.read_ct_series(folder, series_uid=other.meta["series_instance_uid"])
    np.testing.assert_array_equal(picked.array, other.array)


def test_missing_slice_is_rejected(ct_folder):
    folder, _, files = ct_folder
    files[3].unlink()
    with pytest.raises(InputError, match="missing slices") as err:
        io.read_ct_series(folder)
    assert files[2].name in str(err.value) and files[4].name in str(err.value)


def test_non_uniform_spacing_is_rejected(ct_folder):
    folder, ct, files = ct_folder
    pos = np.asarray(ct.origin) + [0.0, 0.0, 4 * ct.spacing[0] + 0.8]
    _edit(files[4], ImagePositionPatient=[f"{v:.3f}" for v in pos])
    with pytest.raises(InputError, match="non-uniform slice spacing"):
        io.read_ct_series(folder)


def test_duplicate_slice_is_rejected(ct_folder):
    folder, ct, files = ct_folder
    shutil.copy(files[1], folder / "copy_of_slice.dcm")
    _edit(folder / "copy_of_slice.dcm", SOPInstanceUID=pydicom.uid.generate_uid())
    with pytest.raises(InputError, match="duplicate slice position"):
        io.read_ct_series(folder)


def test_slices_in_another_frame_of_reference_are_rejected(ct_folder):
    folder, _, files = ct_folder
    _edit(files[1], FrameOfReferenceUID=OTHER_FRAME)
    with pytest.raises(InputError, match="frame of reference"):
        io.read_ct_series(folder)


def test_inconsistent_orientation_is_rejected(ct_folder):
    folder, _, files = ct_folder
    _edit(files[1], ImageOrientationPatient=["0", "1", "0", "1", "0", "0"])
    with pytest.raises(InputError, match="ImageOrientationPatient") as err:
        io.read_ct_series(folder)
    assert err.value.path == str(files[1])


def test_corrupt_or_empty_inputs_name_the_file(ct_folder, tmp_path):
    folder, _, files = ct_folder
    bad = folder / "broken.dcm"
    bad.write_bytes(b"\0" * 50 + b"garbage")
    with pytest.raises(InputError, match="not a DICOM file") as err:
        io.read_ct_series(folder)
    assert err.value.path == str(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no CT images"):
        io.read_ct_series(empty)
    (empty / "notes.txt").write_text("only notes here")
    with pytest.raises(InputError, match="no CT images") as err:
        io.read_ct_series(empty)
    assert err.value.path == str(empty)
    with pytest.raises(InputError, match="not a DICOM file"):  # named explicitly: must be DICOM
        io.read_ct_series(empty / "notes.txt")
    with pytest.raises(InputError, match="no CT images"):  # DICOM, but no CT in it
        io.read_ct_series(io.write_rtdose(tmp_path / "d.dcm", make_ct().with_array(np.ones((6, 20, 24), np.float32))))
    with pytest.raises(InputError, match="no such"):
        io.read_ct_series(tmp_path / "nowhere")


def test_truncated_pixel_data_names_the_file(ct_folder):
    folder, _, files = ct_folder
    ds = pydicom.dcmread(files[0])
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(files[0])
    with pytest.raises(InputError) as err:
        io.read_ct_series(folder)
    assert err.value.path == str(files[0])


# -- RTDOSE -------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [32, 16])
def test_rtdose_round_trip(ct_folder, tmp_path, bits):
    _, ct, _ = ct_folder
    ct = io.read_ct_series(ct_folder[0])
    dose = ct.with_array(np.clip(linear_dose(ct), 0, None), meta={})
    path = io.write_rtdose(tmp_path / "dose.dcm", dose, reference=ct, bits=bits, referenced_rt_plan_uid="1.2.3.4")
    ds = pydicom.dcmread(path)  # a proper Part 10 file: no force needed
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.481.2"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.2" and ds.Modality == "RTDOSE"
    assert ds.DoseUnits == "GY" and ds.DoseType == "PHYSICAL" and ds.DoseSummationType == "PLAN"
    assert ds.BitsAllocated == bits and ds.PixelRepresentation == 0
    assert ds.FrameOfReferenceUID == FRAME and ds.StudyInstanceUID == ct.meta["study_instance_uid"]
    assert ds.PatientID == "P001"
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == "1.2.3.4"
    assert ds.SOPInstanceUID != ds.SeriesInstanceUID != ds.StudyInstanceUID
    back = io.read_rtdose(path)
    step = float(ds.DoseGridScaling)
    assert np.max(np.abs(back.array - dose.array)) <= step / 2 + 1e-6 * dose.array.max()
    assert step <= dose.array.max() / (2**bits - 1) * 1.0001
    np.testing.assert_allclose(back.origin, ct.origin, atol=1e-4)
    np.testing.assert_allclose(back.spacing, ct.spacing, atol=1e-4)
    np.testing.assert_allclose(back.orientation, ct.orientation, atol=1e-6)
    assert back.frame_of_reference_uid == ct.frame_of_reference_uid
    assert back.meta["dose_units"] == "GY"


def test_rtdose_on_its_own_grid_round_trips_geometry(tmp_path):
    dose = Volume(np.random.default_rng(2).uniform(0, 70, (7, 9, 11)).astype(np.float32),
                  origin=(-31.2, 12.5, -101.75), spacing=(3.0, 2.5, 2.0),
                  orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), frame_of_reference_uid=FRAME)
    back = io.read_rtdose(io.write_rtdose(tmp_path / "d.dcm", dose))
    np.testing.assert_allclose(back.array, dose.array, atol=70 / 2**32 + 1e-6)
    for a, b in ((back.origin, dose.origin), (back.spacing, dose.spacing), (back.orientation, dose.orientation)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(back.corners_world(), dose.corners_world(), atol=1e-4)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the sample's own UIDs
def test_reads_pydicom_rtdose_samples():
    path = get_testdata_file("rtdose.dcm")
    ds = pydicom.dcmread(path, force=True)
    dose = io.read_rtdose(path)
    assert dose.shape == (int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    np.testing.assert_allclose(dose.array, ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-6)
    assert dose.spacing == pytest.approx((5.0, 10.0, 10.0))
    np.testing.assert_allclose(dose.origin, [float(x) for x in ds.ImagePositionPatient])
    assert dose.meta["dose_units"] == "RELATIVE"
    one = io.read_rtdose(get_testdata_file("rtdose_1frame.dcm"))
    assert one.shape == (1, 10, 10)
    np.testing.assert_allclose(one.array[0], dose.array[0])


def _write_dose_file(tmp_path, name="dose.dcm", **changes):
    dose = Volume(np.full((4, 5, 6), 2.0, np.float32), (0, 0, 0), (2.0, 2.0, 2.0), frame_of_reference_uid=FRAME)
    path = io.write_rtdose(tmp_path / name, dose)
    if changes:
        _edit(path, **changes)
    return path


def test_negative_dose_in_file_is_rejected(tmp_path):
    path = _write_dose_file(tmp_path)
    ds = pydicom.dcmread(path)
    ds.PixelRepresentation = 1  # signed: 0xFFFFFFFF reads as -1
    px = np.frombuffer(ds.PixelData, dtype="<u4").copy()
    px[7] = 0xFFFFFFFF
    ds.PixelData = px.tobytes()
    ds.save_as(path)
    with pytest.raises(InputError, match="negative") as err:
        io.read_rtdose(path)
    assert err.value.path == str(path)


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_nan_dose_scaling_is_rejected(tmp_path):
    path = _write_dose_file(tmp_path, DoseGridScaling="NaN")
    with pytest.raises(InputError, match="DoseGridScaling") as err:
        io.read_rtdose(path)
    assert err.value.path == str(path)


def test_missing_scaling_and_bad_offsets_are_rejected(tmp_path):
    path = _write_dose_file(tmp_path)
    ds = pydicom.dcmread(path)
    del ds.DoseGridScaling
    ds.save_as(path)
    with pytest.raises(InputError, match="missing DoseGridScaling"):
        io.read_rtdose(path)
    path = _write_dose_file(tmp_path, "offsets.dcm", GridFrameOffsetVector=["0", "2", "4"])
    with pytest.raises(InputError, match="3 values for 4 frames"):
        io.read_rtdose(path)
    path = _write_dose_file(tmp_path, "uneven.dcm", GridFrameOffsetVector=["0", "2", "4", "7"])
    with pytest.raises(InputError, match="non-uniform GridFrameOffsetVector"):
        io.read_rtdose(path)


def test_decreasing_frame_offsets_are_reordered(tmp_path):
    path = _write_dose_file(tmp_path)
    ds = pydicom.dcmread(path)
    px = np.arange(4 * 5 * 6, dtype="<u4").reshape(4, 5, 6)
    ds.PixelData = px.tobytes()
    ds.GridFrameOffsetVector = ["0", "-2", "-4", "-6"]
    ds.save_as(path)
    dose = io.read_rtdose(path)
    scale = float(ds.DoseGridScaling)
    np.testing.assert_allclose(dose.array, px[::-1] * scale, rtol=1e-6)
    assert dose.origin[2] == pytest.approx(-6.0)


def test_not_an_rtdose_is_rejected(ct_folder):
    _, _, files = ct_folder
    with pytest.raises(InputError, match="not an RTDOSE"):
        io.read_rtdose(files[0])


def test_writing_nan_or_negative_dose_is_rejected(tmp_path):
    for bad, word in ((np.nan, "NaN"), (-1.0, "negative")):
        arr = np.ones((2, 3, 4), np.float32)
        arr[1, 1, 1] = bad
        vol = Volume(arr, (0, 0, 0), (1, 1, 1), source="prediction")
        with pytest.raises(InputError, match=word) as err:
            io.write_rtdose(tmp_path / "x.dcm", vol)
        assert err.value.path == "prediction"


def test_writing_dose_for_another_frame_of_reference_is_rejected(ct_folder, tmp_path):
    ct = io.read_ct_series(ct_folder[0])
    dose = ct.with_array(np.ones(ct.shape, np.float32), frame_of_reference_uid=OTHER_FRAME, source="pred.npy")
    with pytest.raises(InputError, match="frame of reference") as err:
        io.write_rtdose(tmp_path / "d.dcm", dose, reference=ct)
    assert err.value.path == "pred.npy"


# -- common grid ----------------------------------------------------------------------------
def test_dose_resampled_onto_ct_grid_in_world_coordinates(ct_folder, tmp_path):
    ct = io.read_ct_series(ct_folder[0])
    grid = Volume(np.zeros((5, 8, 9), np.float32), origin=(-12.0, -11.0, -35.0), spacing=(2.0, 3.0, 3.5),
                  frame_of_reference_uid=FRAME)
    dose = grid.with_array(linear_dose(grid))
    path = io.write_rtdose(tmp_path / "coarse.dcm", dose, reference=ct)
    on_ct = io.dose_on_ct(io.read_rtdose(path), ct, tolerance_mm=25.0)
    assert on_ct.shape == ct.shape and on_ct.same_grid(ct)
    expected = linear_dose(ct)
    inside = np.ones(ct.shape, bool)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in ct.shape], indexing="ij"), -1)
    frac = grid.world_to_index(ct.index_to_world(idx))
    inside = np.all((frac >= -1e-6) & (frac <= np.asarray(grid.shape) - 1 + 1e-6), axis=-1)
    assert inside.any() and (~inside).any()
    np.testing.assert_allclose(on_ct.array[inside], expected[inside], atol=1e-3)  # trilinear is exact on a linear dose
    assert np.all(on_ct.array[~inside] == 0)


def test_resample_between_differently_oriented_grids():
    src = Volume(np.zeros((9, 10, 11), np.float32), origin=(-20, -20, -20), spacing=(4.0, 4.0, 4.0))
    src = src.with_array(linear_dose(src))
    c, s = np.cos(0.4), np.sin(0.4)
    tgt = Volume(np.zeros((5, 6, 7), np.float32), origin=(-5, -4, -3), spacing=(2.0, 2.5, 3.0),
                 orientation=(c, s, 0, -s, c, 0))
    out = io.resample(src, tgt)
    np.testing.assert_allclose(out.array, linear_dose(tgt), atol=1e-3)


def test_dose_outside_ct_is_rejected(ct_folder, tmp_path):
    ct = io.read_ct_series(ct_folder[0])
    far = Volume(np.ones((3, 4, 4), np.float32), origin=(500.0, 0.0, 0.0), spacing=(2, 2, 2), frame_of_reference_uid=FRAME)
    path = io.write_rtdose(tmp_path / "far.dcm", far)
    with pytest.raises(InputError, match="entirely outside") as err:
        io.dose_on_ct(io.read_rtdose(path), ct)
    assert err.value.path == str(path)
    # overlapping, but reaching 10 mm beyond the CT's last slice
    z_end = ct.origin[2] + (ct.shape[0] - 1) * ct.spacing[0]
    over = Volume(np.ones((4, 4, 4), np.float32), origin=(-10.0, -10.0, z_end - 5.0), spacing=(5, 5, 5),
                  frame_of_reference_uid=FRAME)
    path = io.write_rtdose(tmp_path / "over.dcm", over)
    with pytest.raises(InputError, match="beyond"):
        io.dose_on_ct(io.read_rtdose(path), ct)
    io.check_within(io.read_rtdose(path), ct, tolerance_mm=15.0)  # tolerated when asked


def test_mismatched_frame_of_reference_is_rejected(ct_folder, tmp_path):
    ct = io.read_ct_series(ct_folder[0])
    dose = ct.with_array(np.ones(ct.shape, np.float32), frame_of_reference_uid=OTHER_FRAME)
    path = io.write_rtdose(tmp_path / "other.dcm", dose)
    with pytest.raises(InputError, match="frame of reference") as err:
        io.dose_on_ct(io.read_rtdose(path), ct)
    assert err.value.path == str(path)


# -- RTSTRUCT --------------------------------------------------------------------------------
def test_rtstruct_round_trip_gives_the_same_masks(ct_folder, tmp_path):
    ct = io.read_ct_series(ct_folder[0])
    k, i, j = np.meshgrid(*[np.arange(n) for n in ct.shape], indexing="ij")
    ball = (k - 2.5) ** 2 / 9 + (i - 9.5) ** 2 / 40 + (j - 11) ** 2 / 60 <= 1
    ring = ((i - 10) ** 2 + (j - 12) ** 2 <= 64) & ((i - 10) ** 2 + (j - 12) ** 2 > 9) & (k >= 1)  # with a hole
    corner = np.zeros(ct.shape, bool)
    corner[:, :3, :2] = True
    corner[2, 4, 3] = True  # a separate island touching nothing
    corner[3, 3, 2] = True  # touching the block only at a corner
    path = io.write_rtstruct(tmp_path / "rs.dcm", ct, {"PTV": ball, "Ring": ring, "Edge": corner})
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3" and ds.Modality == "RTSTRUCT"
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == FRAME
    refs = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert [x.ReferencedSOPInstanceUID for x in refs.ContourImageSequence] == ct.meta["sop_instance_uids"]
    back = io.read_rtstruct(path, ct)
    assert list(back) == ["PTV", "Ring", "Edge"]
    for name, mask in (("PTV", ball), ("Ring", ring), ("Edge", corner)):
        np.testing.assert_array_equal(back[name].mask, mask, err_msg=name)
    only = io.read_rtstruct(path, ct, names=["Ring"])
    assert list(only) == ["Ring"]
    with pytest.raises(InputError, match="no ROI named"):
        io.read_rtstruct(path, ct, names=["Bladder"])


def test_reads_pydicom_rtstruct_sample():
    path = get_testdata_file("rtstruct.dcm")
    ds = pydicom.dcmread(path, force=True)
    frame = ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    # a CT covering the sample's contours (slices at z = -200, -190, -180 mm)
    ct = Volume(np.zeros((3, 40, 50), np.float32), origin=(-245.0, -195.0, -200.0), spacing=(10.0, 10.0, 10.0),
                frame_of_reference_uid=frame)
    rois = io.read_rtstruct(path, ct)
    assert list(rois) == ["patient", "Isocenter 1", "Isocenter 2"]
    patient = rois["patient"].mask
    # rectangles x in [-200, 200], y in [-150, 150]: 40 x 30 voxel centres on each slice
    assert patient.sum(axis=(1, 2)).tolist() == [1200, 1200, 1200]
    x = ct.origin[0] + np.arange(50) * 10.0
    y = ct.origin[1] + np.arange(40) * 10.0
    inside = (np.abs(y)[:, None] < 150) & (np.abs(x)[None, :] < 200)
    np.testing.assert_array_equal(patient[0], inside)
    assert not rois["Isocenter 1"].mask.any()  # POINT contours make no volume
    other = Volume(np.zeros((3, 4, 5), np.float32), (0, 0, -200.0), (10, 10, 10), frame_of_reference_uid=OTHER_FRAME)
    with pytest.raises(InputError, match="frame of reference") as err:
        io.read_rtstruct(path, other)
    assert err.value.path == str(path)


def test_contour_off_the_slice_planes_is_rejected(ct_folder, tmp_path):
    ct = io.read_ct_series(ct_folder[0])
    mask = np.zeros(ct.shape, bool)
    mask[2, 5:9, 5:9] = True
    path = io.write_rtstruct(tmp_path / "rs.dcm", ct, {"Box": mask})
    ds = pydicom.dcmread(path)
    c = ds.ROIContourSequence[0].ContourSequence[0]
    pts = np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
    pts[:, 2] += 0.5 * ct.spacing[0]  # halfway between two slices
    c.ContourData = [f"{v:.3f}" for v in pts.ravel()]
    ds.save_as(path)
    with pytest.raises(InputError, match="between CT slices") as err:
        io.read_rtstruct(path, ct)
    assert err.value.path == str(path)
