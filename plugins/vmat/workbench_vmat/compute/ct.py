"""CT series: read a folder of slices into a Volume (HU), write a Volume as a series."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from pydicom.uid import generate_uid

from workbench.api import InputError

from . import _dicom as D
from .volume import Volume

__all__ = ["read_ct_series", "write_ct_series"]

#: slice spacing tolerance (mm) and in-plane tolerance for tilt detection (mm)
_SPACING_TOL = 0.01
_INPLANE_TOL = 0.01


def _candidate_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"
        )
    if path.is_file():
        return [path]
    raise InputError(path, "no such file or folder")


def read_ct_series(source: str | Path | Sequence[str | Path], *, series_uid: str | None = None) -> Volume:
    """Read a CT series into a Volume of Hounsfield units (float32, (z, y, x)).

    ``source``: a folder (any file order; non-DICOM files without a DICOM suffix and
    non-CT objects such as RTDOSE/RTSTRUCT are skipped), one file, or a list of files.
    Slices are sorted along the slice normal (from ImageOrientationPatient); HU =
    stored value * RescaleSlope + RescaleIntercept. ``series_uid`` picks one series when
    the folder holds several. Raises InputError for mixed series, inconsistent geometry,
    gantry tilt, duplicate or missing slices and non-uniform slice spacing.
    """
    if isinstance(source, (str, Path)):
        where = Path(source)
        files = _candidate_files(where)
        named = not where.is_dir()  # the caller named the file(s): each must be DICOM
    else:
        files = [Path(p) for p in source]
        if not files:
            raise InputError("<no files>", "no CT files given")
        where = files[0].parent
        named = True
    slices = []
    for f in files:
        try:
            ds = D.read_dataset(f)
        except InputError:
            if named or f.suffix.lower() in D.DICOM_SUFFIXES:
                raise
            continue  # a README or a screenshot next to the slices
        modality = str(ds.get("Modality", ""))
        sop = str(ds.get("SOPClassUID", ""))
        if modality != "CT" and sop != D.CT_IMAGE_STORAGE:
            continue
        slices.append((f, ds))
    if not slices:
        raise InputError(where, "no CT images found")
    series = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in slices})
    if series_uid is not None:
        slices = [(f, ds) for f, ds in slices if str(ds.get("SeriesInstanceUID", "")) == series_uid]
        if not slices:
            raise InputError(where, f"no CT images of series {series_uid} (found: {', '.join(series)})")
    elif len(series) > 1:
        first = {}
        for f, ds in slices:
            first.setdefault(str(ds.get("SeriesInstanceUID", "")), f.name)
        listing = "; ".join(f"{uid} (e.g. {name})" for uid, name in first.items())
        raise InputError(where, f"mixed series: {len(series)} CT series in one folder: {listing}; choose one with series_uid")
    return _assemble(where, slices)


def _assemble(where: Path, slices: list) -> Volume:
    f0, ds0 = slices[0]
    for f, ds in slices:
        D.require(ds, f, "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
        tilt = ds.get("GantryDetectorTilt", 0)
        try:
            tilt = float(tilt or 0)
        except (TypeError, ValueError):
            tilt = 0.0
        if abs(tilt) > 1e-3:
            raise InputError(f, f"gantry tilt of {tilt:g} degrees is not supported")
    iop = D.orientation_of(ds0, f0)
    spacing_rc = D.floats(ds0, "PixelSpacing", 2, f0)
    shape_rc = (int(ds0.Rows), int(ds0.Columns))
    frame = str(ds0.get("FrameOfReferenceUID", "")) or None
    normal = np.cross(iop[:3], iop[3:])
    pos = []
    for f, ds in slices:
        if not np.allclose(D.orientation_of(ds, f), iop, atol=1e-4):
            raise InputError(f, f"ImageOrientationPatient differs from {f0.name}'s")
        if (int(ds.Rows), int(ds.Columns)) != shape_rc:
            raise InputError(f, f"image size {int(ds.Rows)}x{int(ds.Columns)} differs from {f0.name}'s {shape_rc[0]}x{shape_rc[1]}")
        if not np.allclose(D.floats(ds, "PixelSpacing", 2, f), spacing_rc, atol=1e-4):
            raise InputError(f, f"PixelSpacing differs from {f0.name}'s")
        fr = str(ds.get("FrameOfReferenceUID", "")) or None
        D.check_frame_of_reference(frame, fr, f, f0.name)
        pos.append(D.floats(ds, "ImagePositionPatient", 3, f))
    pos = np.array(pos)
    along = pos @ normal
    order = np.argsort(along, kind="stable")
    slices = [slices[k] for k in order]
    pos, along = pos[order], along[order]
    # positions must lie on one line along the normal (else: gantry tilt / sheared stack)
    inplane = pos - along[:, None] * normal[None, :]
    drift = np.linalg.norm(inplane - inplane[0], axis=1)
    if np.any(drift > _INPLANE_TOL + 1e-4 * np.abs(along - along[0])):
        k = int(np.argmax(drift))
        raise InputError(
            slices[k][0],
            f"slice is shifted {drift[k]:.2f} mm in-plane from the first slice: gantry tilt or sheared series",
        )
    if len(slices) > 1:
        gaps = np.diff(along)
        dup = np.nonzero(gaps < _SPACING_TOL)[0]
        if len(dup):
            k = int(dup[0])
            raise InputError(
                slices[k + 1][0], f"duplicate slice position {along[k + 1]:.2f} mm (same as {slices[k][0].name})"
            )
        dz = float(np.min(gaps))
        if np.max(gaps) - dz > max(_SPACING_TOL, 1e-3 * dz):
            ratio = gaps / dz
            k = int(np.argmax(gaps))
            if np.allclose(ratio, np.round(ratio), atol=0.02):
                missing = int(np.round(ratio - 1).sum())
                raise InputError(
                    where,
                    f"missing slices: {missing} slice(s) absent, e.g. a {gaps[k]:.2f} mm gap between "
                    f"{slices[k][0].name} and {slices[k + 1][0].name} (spacing {dz:.2f} mm)",
                )
            raise InputError(
                where, f"non-uniform slice spacing: gaps from {dz:.3f} to {float(np.max(gaps)):.3f} mm"
            )
        dz = float(np.mean(gaps))
    else:
        dz = _single_slice_spacing(ds0)
    arr = np.empty((len(slices),) + shape_rc, dtype=np.float32)
    for k, (f, ds) in enumerate(slices):
        px = D.pixel_array(ds, f)
        if px.shape != shape_rc:
            raise InputError(f, f"pixel data has shape {px.shape}, expected {shape_rc}")
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        arr[k] = px.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    meta = D.patient_and_study(ds0)
    meta.update(
        series_instance_uid=str(ds0.get("SeriesInstanceUID", "")),
        sop_instance_uids=[str(ds.SOPInstanceUID) for _, ds in slices],
        sop_class_uid=str(ds0.get("SOPClassUID", D.CT_IMAGE_STORAGE)),
        files=[str(f) for f, _ in slices],
        modality="CT",
    )
    return Volume(
        array=arr,
        origin=tuple(pos[0]),
        spacing=(dz, float(spacing_rc[0]), float(spacing_rc[1])),
        orientation=tuple(iop),
        frame_of_reference_uid=frame,
        source=str(where),
        meta=meta,
    )


def _single_slice_spacing(ds) -> float:
    for kw in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            v = float(ds.get(kw, 0) or 0)
        except (TypeError, ValueError):
            v = 0.0
        if v > 0:
            return v
    return 1.0


def write_ct_series(
    folder: str | Path,
    ct: Volume,
    *,
    patient_name: str | None = None,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    series_description: str = "Workbench CT",
    prefix: str = "CT",
) -> list[Path]:
    """Write ``ct`` (HU) as one CT Image Storage file per slice into ``folder``.

    Patient/study identifiers come from the arguments, else from ``ct.meta``, else are
    generated; the frame of reference is ``ct.frame_of_reference_uid`` (generated if
    unset). Stored as signed 16-bit with RescaleIntercept -1024 (HU below -1024 clip).
    Returns the files, in slice order; ``ct.meta`` and ``ct.frame_of_reference_uid`` are
    updated with the UIDs written, so an RTDOSE or RTSTRUCT can refer to them.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    values = np.asarray(ct.array, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError(ct.source or folder, "CT contains NaN or infinite values")
    meta = dict(ct.meta)
    if patient_name is not None:
        meta["patient_name"] = patient_name
    if patient_id is not None:
        meta["patient_id"] = patient_id
    if study_instance_uid is not None:
        meta["study_instance_uid"] = study_instance_uid
    meta.setdefault("study_instance_uid", generate_uid())
    series = series_instance_uid or generate_uid()
    frame = ct.frame_of_reference_uid or generate_uid()
    stored = np.clip(np.round(values + 1024.0), -32768, 32767).astype("<i2")
    normal = ct.slice_dir
    files, uids = [], []
    for k in range(ct.shape[0]):
        ds = D.new_file_dataset(D.CT_IMAGE_STORAGE)
        D.copy_patient_and_study(ds, meta)
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = 1
        ds.SeriesDescription = series_description
        ds.Manufacturer = "Distillation Workbench"
        ds.PatientPosition = meta.get("patient_position", "HFS")
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.KVP = ""
        position = np.asarray(ct.origin) + k * ct.spacing[0] * normal
        ds.ImagePositionPatient = D.ds_list(position)
        ds.ImageOrientationPatient = D.ds_list(ct.orientation)
        ds.SliceLocation = D.ds_number(float(position @ normal))
        ds.SliceThickness = D.ds_number(ct.spacing[0])
        ds.PixelSpacing = D.ds_list(ct.spacing[1:])
        ds.Rows, ds.Columns = ct.shape[1], ct.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.PixelData = stored[k].tobytes()
        path = folder / f"{prefix}{k + 1:04d}.dcm"
        D.save(ds, path)
        files.append(path)
        uids.append(str(ds.SOPInstanceUID))
    ct.frame_of_reference_uid = frame
    ct.meta.update(
        {k: v for k, v in meta.items() if k.startswith(("patient", "study", "accession"))},
        series_instance_uid=series,
        sop_instance_uids=uids,
        sop_class_uid=D.CT_IMAGE_STORAGE,
        files=[str(f) for f in files],
        modality="CT",
    )
    return files

