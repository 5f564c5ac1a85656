"""RTDOSE: read a dose grid into a Volume (Gy), write a Volume as an RTDOSE file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from workbench.api import InputError

from . import _dicom as D
from .volume import AXIAL, Volume

__all__ = ["read_rtdose", "write_rtdose", "validate_dose"]

_DOSE_TYPES = ("PHYSICAL", "EFFECTIVE", "ERROR")
_SUMMATION_TYPES = (
    "PLAN", "MULTI_PLAN", "PLAN_OVERVIEW", "FRACTION", "BEAM", "BRACHY", "FRACTION_SESSION",
    "BEAM_SESSION", "BRACHY_SESSION", "CONTROL_POINT", "RECORD",
)


def validate_dose(dose: np.ndarray, where: str | Path) -> None:
    """InputError unless every voxel is a finite, non-negative dose."""
    arr = np.asarray(dose)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(where, f"dose contains {int(bad.sum())} NaN or infinite value(s)")
    if arr.size and float(arr.min()) < 0:
        raise InputError(where, f"dose contains {int((arr < 0).sum())} negative value(s) (min {float(arr.min()):.4g} Gy)")


def read_rtdose(path: str | Path) -> Volume:
    """Read an RTDOSE file (single or multi-frame) into a Volume of doses (float32, (z, y, x)).

    Dose = stored value * DoseGridScaling (cGy converted to Gy; RELATIVE kept as is,
    ``meta["dose_units"]`` says which). Frame positions come from GridFrameOffsetVector,
    relative to ImagePositionPatient (first offset 0) or, for axial grids, absolute z;
    frames are reordered to increase along the slice normal. Raises InputError for a
    missing or bad DoseGridScaling, NaN or negative doses, a frame count that does not
    match the offsets, and non-uniform frame spacing.
    """
    path = Path(path)
    ds = D.read_dataset(path)
    modality = str(ds.get("Modality", ""))
    if modality != "RTDOSE" and str(ds.get("SOPClassUID", "")) != D.RT_DOSE_STORAGE:
        raise InputError(path, f"not an RTDOSE (Modality {modality or 'missing'})")
    D.require(ds, path, "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
    if "DoseGridScaling" not in ds:
        raise InputError(path, "missing DoseGridScaling")
    scaling = D.floats(ds, "DoseGridScaling", 1, path)[0]
    if not scaling > 0:
        raise InputError(path, f"DoseGridScaling must be positive, not {scaling:g}")
    iop = D.orientation_of(ds, path)
    ipp = D.floats(ds, "ImagePositionPatient", 3, path)
    spacing_rc = D.floats(ds, "PixelSpacing", 2, path)
    if np.any(spacing_rc <= 0):
        raise InputError(path, f"PixelSpacing must be positive, not {list(spacing_rc)}")
    px = D.pixel_array(ds, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if px.ndim == 2:
        px = px[None]
    if px.shape != (frames, int(ds.Rows), int(ds.Columns)):
        raise InputError(path, f"pixel data has shape {px.shape}, expected {(frames, int(ds.Rows), int(ds.Columns))}")
    dose = px.astype(np.float64) * scaling
    units = str(ds.get("DoseUnits", "GY")).upper()
    if units == "CGY":
        dose /= 100.0
        units = "GY"
    validate_dose(dose, path)

    normal = np.cross(iop[:3], iop[3:])
    if "GridFrameOffsetVector" in ds and ds.GridFrameOffsetVector not in (None, ""):
        try:
            offsets = np.array([float(x) for x in D.as_list(ds.GridFrameOffsetVector)])
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"GridFrameOffsetVector is not numeric: {exc}") from exc
    else:
        offsets = np.zeros(1)
    if frames > 1 and len(offsets) != frames:
        raise InputError(path, f"GridFrameOffsetVector has {len(offsets)} values for {frames} frames")
    offsets = offsets[:frames]
    if not np.all(np.isfinite(offsets)):
        raise InputError(path, "GridFrameOffsetVector is not finite")
    if offsets[0] != 0 and np.allclose(iop, AXIAL, atol=1e-4) and abs(offsets[0] - ipp[2]) < 1e-3:
        offsets = offsets - ipp[2]  # absolute z positions (allowed for axial grids)
    order = np.argsort(offsets, kind="stable")
    offsets, dose = offsets[order], dose[order]
    if frames > 1:
        gaps = np.diff(offsets)
        if np.any(gaps < 1e-3):
            raise InputError(path, "GridFrameOffsetVector repeats a position")
        dz = float(np.mean(gaps))
        if np.max(gaps) - np.min(gaps) > max(0.01, 1e-3 * dz):
            raise InputError(
                path, f"non-uniform GridFrameOffsetVector: gaps from {np.min(gaps):.3f} to {np.max(gaps):.3f} mm"
            )
    else:
        dz = float(ds.get("SliceThickness", 0) or 0) or 1.0
    origin = ipp + offsets[0] * normal
    meta = D.patient_and_study(ds)
    meta.update(
        dose_units=units,
        dose_type=str(ds.get("DoseType", "")),
        dose_summation_type=str(ds.get("DoseSummationType", "")),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        modality="RTDOSE",
        dose_grid_scaling=float(scaling),
    )
    plans = ds.get("ReferencedRTPlanSequence")
    if plans:
        meta["referenced_rt_plan_uid"] = str(plans[0].get("ReferencedSOPInstanceUID", ""))
    return Volume(
        array=dose.astype(np.float32),
        origin=tuple(origin),
        spacing=(dz, float(spacing_rc[0]), float(spacing_rc[1])),
        orientation=tuple(iop),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")) or None,
        source=str(path),
        meta=meta,
    )


def write_rtdose(
    path: str | Path,
    dose: Volume,
    *,
    reference: Volume | None = None,
    bits: int = 32,
    dose_type: str = "PHYSICAL",
    summation_type: str = "PLAN",
    referenced_rt_plan_uid: str | None = None,
    series_description: str = "Workbench dose",
    comment: str | None = None,
    heterogeneity_correction: tuple[str, ...] | None = None,
) -> Path:
    """Write ``dose`` (Gy, on its own grid) as an RT Dose Storage file.

    ``reference``: the CT (or any volume read from the patient's study) whose patient,
    study and frame of reference the dose belongs to; its FrameOfReferenceUID must equal
    the dose's when both are set. The grid is written as ImagePositionPatient (first
    frame), ImageOrientationPatient, PixelSpacing and a relative GridFrameOffsetVector;
    values as unsigned ``bits`` (16 or 32) integers with DoseGridScaling = max / (2^bits - 1).
    ``referenced_rt_plan_uid`` adds a ReferencedRTPlanSequence (DICOM expects one for
    PLAN/BEAM/FRACTION summations when a plan exists). ``heterogeneity_correction``:
    e.g. ("IMAGE",) for a patient dose, ("WATER",) for a dose in water; omitted if None.
    """
    path = Path(path)
    where = dose.source or path
    if bits not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, not {bits}")
    if dose_type not in _DOSE_TYPES:
        raise ValueError(f"dose_type must be one of {_DOSE_TYPES}")
    if summation_type not in _SUMMATION_TYPES:
        raise ValueError(f"summation_type must be one of {_SUMMATION_TYPES}")
    values = np.asarray(dose.array, dtype=np.float64)
    validate_dose(values, where)
    meta = dict(reference.meta) if reference is not None else dict(dose.meta)
    frame = dose.frame_of_reference_uid
    if reference is not None:
        D.check_frame_of_reference(reference.frame_of_reference_uid, frame, where, reference.source or "the reference")
        frame = frame or reference.frame_of_reference_uid
    frame = frame or generate_uid()

    top = float(values.max()) if values.size else 0.0
    scaling = top / float(2**bits - 1) if top > 0 else 1.0
    scaling_str = D.ds_number(scaling)
    scaling = float(scaling_str)
    stored = np.clip(np.round(values / scaling), 0, 2**bits - 1).astype("<u4" if bits == 32 else "<u2")

    ds = D.new_file_dataset(D.RT_DOSE_STORAGE)
    D.copy_patient_and_study(ds, meta)
    ds.Modality = "RTDOSE"
    ds.Manufacturer = "Distillation Workbench"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDescription = series_description
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = frame
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = D.ds_list(dose.origin)
    ds.ImageOrientationPatient = D.ds_list(dose.orientation)
    ds.PixelSpacing = D.ds_list(dose.spacing[1:])
    ds.SliceThickness = D.ds_number(dose.spacing[0])
    nz = dose.shape[0]
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)  # GridFrameOffsetVector
    ds.GridFrameOffsetVector = D.ds_list(np.arange(nz) * dose.spacing[0])
    ds.Rows, ds.Columns = dose.shape[1], dose.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = dose_type
    ds.DoseSummationType = summation_type
    ds.DoseGridScaling = scaling_str
    if heterogeneity_correction:
        ds.TissueHeterogeneityCorrection = list(heterogeneity_correction)
    if comment:
        ds.DoseComment = comment[:64]
    if referenced_rt_plan_uid:
        item = Dataset()
        item.ReferencedSOPClassUID = D.RT_PLAN_STORAGE
        item.ReferencedSOPInstanceUID = referenced_rt_plan_uid
        ds.ReferencedRTPlanSequence = Sequence([item])
    ds.PixelData = stored.tobytes()
    return D.save(ds, path)
