"""Helpers shared by the DICOM readers and writers (pydicom 2.4 and 3.x)."""
from __future__ import annotations

import datetime as _dt
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid
from pydicom.valuerep import format_number_as_ds

from workbench.api import InputError

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.2"

#: suffixes of files that are meant to be DICOM (a parse failure is then an error)
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima"}


def read_dataset(path: str | Path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read one DICOM file; InputError (naming the file) if it is missing or not DICOM.

    Files without the 128-byte preamble (some exports, pydicom's own test files) are
    read again in forced mode and accepted if they look like a DICOM data set.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    except Exception as exc:  # truncated or corrupt content
        raise InputError(path, f"cannot read DICOM: {exc}") from exc
    try:
        with warnings.catch_warnings():  # forced reads of non-DICOM files warn a lot
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
            ok = "SOPClassUID" in ds or "Modality" in ds
    except Exception:
        ok = False
    if not ok:
        raise InputError(path, "not a DICOM file")
    return ds


def require(ds: Dataset, path: str | Path, *keywords: str) -> None:
    for kw in keywords:
        if kw not in ds or ds[kw].value in (None, "", []):
            raise InputError(path, f"missing {kw}")


def as_list(value: Any) -> list:
    """A DICOM value as a list (multi-valued elements are MultiValue, single ones scalars)."""
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def floats(ds: Dataset, keyword: str, n: int, path: str | Path) -> np.ndarray:
    require(ds, path, keyword)
    v = ds[keyword].value
    try:
        arr = np.array([float(x) for x in as_list(v)])
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"{keyword} is not numeric: {v!r}") from exc
    if arr.size != n or not np.all(np.isfinite(arr)):
        raise InputError(path, f"{keyword} must hold {n} finite numbers, not {list(v) if n > 1 else v!r}")
    return arr


def orientation_of(ds: Dataset, path: str | Path) -> np.ndarray:
    iop = floats(ds, "ImageOrientationPatient", 6, path)
    r, c = iop[:3], iop[3:]
    if abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3 or abs(r @ c) > 1e-3:
        raise InputError(path, f"ImageOrientationPatient {list(iop)} is not two orthonormal direction cosines")
    # normalise the tiny rounding of DS strings
    r = r / np.linalg.norm(r)
    c = c - (c @ r) * r
    return np.concatenate([r, c / np.linalg.norm(c)])


def pixel_array(ds: Dataset, path: str | Path) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:
        raise InputError(path, f"cannot decode the pixel data: {exc}") from exc


def ds_number(x: float) -> str:
    """A decimal string (DS) of at most 16 characters."""
    return format_number_as_ds(float(x))


def ds_list(values: Iterable[float]) -> list[str]:
    return [ds_number(v) for v in values]


def new_file_dataset(sop_class_uid: str, sop_instance_uid: str | None = None) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "WORKBENCH_VMAT"
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 100"
    now = _dt.datetime.now()
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    return ds


def copy_patient_and_study(ds: Dataset, source: dict[str, Any]) -> None:
    """Patient and study modules from ``source`` (a volume's ``meta``), else placeholders."""
    ds.PatientName = source.get("patient_name") or "Anonymous"
    ds.PatientID = source.get("patient_id") or "WORKBENCH"
    ds.PatientBirthDate = source.get("patient_birth_date", "")
    ds.PatientSex = source.get("patient_sex", "")
    ds.StudyInstanceUID = source.get("study_instance_uid") or generate_uid()
    now = _dt.datetime.now()
    ds.StudyDate = source.get("study_date") or now.strftime("%Y%m%d")
    ds.StudyTime = source.get("study_time") or now.strftime("%H%M%S")
    ds.StudyID = source.get("study_id", "1")
    ds.AccessionNumber = source.get("accession_number", "")
    ds.ReferringPhysicianName = ""


def patient_and_study(ds: Dataset) -> dict[str, Any]:
    """What a writer needs to put a new object in the same patient and study."""
    out = {}
    for key, kw in (
        ("patient_name", "PatientName"),
        ("patient_id", "PatientID"),
        ("patient_birth_date", "PatientBirthDate"),
        ("patient_sex", "PatientSex"),
        ("study_instance_uid", "StudyInstanceUID"),
        ("study_date", "StudyDate"),
        ("study_time", "StudyTime"),
        ("study_id", "StudyID"),
        ("accession_number", "AccessionNumber"),
    ):
        if kw in ds and ds[kw].value not in (None, ""):
            out[key] = str(ds[kw].value)
    return out


def save(ds: Dataset, path: str | Path) -> Path:
    """Write a DICOM Part 10 file (preamble, file meta, explicit VR little endian)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)  # pydicom >= 3
    except TypeError:
        ds.is_little_endian, ds.is_implicit_VR = True, False  # pydicom 2.x
        pydicom.dcmwrite(path, ds, write_like_original=False)
    return path


def check_frame_of_reference(expected: str | None, found: str | None, path: str | Path, what: str) -> None:
    if expected and found and expected != found:
        raise InputError(path, f"frame of reference {found} differs from {what}'s {expected}")
