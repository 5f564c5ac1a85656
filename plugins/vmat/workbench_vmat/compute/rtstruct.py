"""RTSTRUCT: closed planar contours per CT slice <-> boolean voxel masks on the CT grid.

Reading rasterises each contour on its CT slice with the even-odd rule (a voxel is in
when its centre is inside; contours on the same slice are combined by XOR, so holes
drawn as inner contours stay holes). Writing traces the outline of each slice of a mask
along voxel edges, so reading the file back gives the same mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from workbench.api import InputError

from . import _dicom as D
from .volume import Volume

__all__ = ["Structure", "read_rtstruct", "write_rtstruct", "rasterize_polygon", "mask_outlines"]

#: how far (in slices) a contour may sit from a CT slice plane
_PLANE_TOL = 0.25


@dataclass
class Structure:
    name: str
    mask: np.ndarray  # bool, the CT's shape
    number: int = 0
    color: tuple[int, int, int] = (255, 0, 0)
    interpreted_type: str = ""


def read_rtstruct(path: str | Path, ct: Volume, *, names: list[str] | None = None) -> dict[str, Structure]:
    """ROIs of an RTSTRUCT as voxel masks on ``ct``'s grid, by ROI name (file order).

    ``names`` restricts to those ROIs (InputError if one is missing). Only
    CLOSED_PLANAR contours make volumes; POINT and open contours are ignored (an ROI of
    only those gets an empty mask). Raises InputError (naming the file) when the
    structure set's frame of reference differs from the CT's or a contour does not lie
    in a CT slice plane.
    """
    path = Path(path)
    ds = D.read_dataset(path)
    if str(ds.get("Modality", "")) != "RTSTRUCT" and str(ds.get("SOPClassUID", "")) != D.RT_STRUCTURE_SET_STORAGE:
        raise InputError(path, f"not an RTSTRUCT (Modality {ds.get('Modality', 'missing')})")
    frames = {str(item.get("FrameOfReferenceUID", "")) for item in ds.get("ReferencedFrameOfReferenceSequence", [])}
    frames.discard("")
    info = {}
    for roi in ds.get("StructureSetROISequence", []):
        number = int(roi.ROINumber)
        info[number] = (str(roi.get("ROIName", f"ROI {number}")), str(roi.get("ReferencedFrameOfReferenceUID", "")))
    if ct.frame_of_reference_uid:
        for fr in sorted(frames | {f for _, f in info.values() if f}):
            D.check_frame_of_reference(ct.frame_of_reference_uid, fr, path, ct.source or "the CT")
    types = {
        int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", ""))
        for o in ds.get("RTROIObservationsSequence", [])
        if "ReferencedROINumber" in o
    }
    out: dict[str, Structure] = {}
    for rc in ds.get("ROIContourSequence", []):
        number = int(rc.get("ReferencedROINumber", 0))
        name = info.get(number, (f"ROI {number}", ""))[0]
        if names is not None and name not in names:
            continue
        color = tuple(int(x) for x in D.as_list(rc.get("ROIDisplayColor", [255, 0, 0])))[:3]
        mask = np.zeros(ct.shape, dtype=bool)
        parity = np.zeros(ct.shape, dtype=np.int32)
        for c in rc.get("ContourSequence", []):
            if str(c.get("ContourGeometricType", "")) != "CLOSED_PLANAR":
                continue
            pts = np.array([float(x) for x in D.as_list(c.get("ContourData", []))], dtype=float)
            if pts.size < 9 or pts.size % 3:
                raise InputError(path, f"ROI {name!r}: a contour has {pts.size} coordinates (need triplets, at least 3 points)")
            idx = ct.world_to_index(pts.reshape(-1, 3))
            k = idx[:, 0]
            if np.ptp(k) > 2 * _PLANE_TOL:
                raise InputError(path, f"ROI {name!r}: a contour is not planar in the CT's slice planes")
            kk = int(np.round(k.mean()))
            if abs(k.mean() - kk) > _PLANE_TOL:
                raise InputError(path, f"ROI {name!r}: a contour lies between CT slices (slice index {k.mean():.2f})")
            if not 0 <= kk < ct.shape[0]:
                continue  # outside the CT's extent
            parity[kk] += rasterize_polygon(idx[:, 1], idx[:, 2], ct.shape[1:])
        np.not_equal(parity % 2, 0, out=mask)
        key = name if name not in out else f"{name} ({number})"
        out[key] = Structure(key, mask, number, color, types.get(number, ""))
    if names is not None:
        missing = [n for n in names if n not in out]
        if missing:
            known = ", ".join(n for n, _ in info.values())
            raise InputError(path, f"no ROI named {', '.join(map(repr, missing))} (has: {known})")
    return out


def rasterize_polygon(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """0/1 image of the pixels whose centres lie inside a polygon (even-odd rule).

    ``rows``/``cols``: fractional pixel coordinates of the vertices (closed implicitly).
    """
    r0, c0 = np.asarray(rows, float), np.asarray(cols, float)
    r1, c1 = np.roll(r0, -1), np.roll(c0, -1)
    nr, nc = shape
    lo = max(int(np.ceil(r0.min())), 0)
    hi = min(int(np.floor(r0.max())), nr - 1)
    out = np.zeros(shape, dtype=np.int32)
    if hi < lo:
        return out
    y = np.arange(lo, hi + 1, dtype=float)[:, None]  # scanlines through pixel centres
    up = (r0[None] <= y) & (r1[None] > y)
    down = (r1[None] <= y) & (r0[None] > y)
    cross = up | down
    with np.errstate(divide="ignore", invalid="ignore"):
        x = c0[None] + (y - r0[None]) * (c1 - c0)[None] / (r1 - r0)[None]
    yi, ei = np.nonzero(cross)
    # a pixel centre j is inside when an odd number of crossings lie at or left of it
    first = np.clip(np.ceil(x[yi, ei]), 0, nc).astype(np.int64)
    toggles = np.zeros((hi - lo + 1, nc + 1), dtype=np.int32)
    np.add.at(toggles, (yi, first), 1)
    out[lo : hi + 1] = np.cumsum(toggles[:, :nc], axis=1) % 2
    return out


def mask_outlines(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed outlines of a 2-D mask along pixel edges, as (n, 2) arrays of (row, col).

    Vertices sit on pixel corners (half-integer coordinates); collinear vertices are
    dropped. Outer boundaries run counter-clockwise (in (col, row) axes), holes clockwise.
    """
    m = np.pad(np.asarray(mask2d, dtype=bool), 1)
    # directed edges with the foreground on the left; vertex (r, c) = corner at r-0.5, c-0.5
    nxt: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def add(a, b):
        nxt.setdefault(a, []).append(b)

    inside = m[1:-1, 1:-1]
    rr, cc = np.nonzero(inside & ~m[:-2, 1:-1])  # top edge: left to right... foreground below
    for r, c in zip(rr, cc):
        add((r, c + 1), (r, c))
    rr, cc = np.nonzero(inside & ~m[2:, 1:-1])  # bottom edge
    for r, c in zip(rr, cc):
        add((r + 1, c), (r + 1, c + 1))
    rr, cc = np.nonzero(inside & ~m[1:-1, :-2])  # left edge
    for r, c in zip(rr, cc):
        add((r, c), (r + 1, c))
    rr, cc = np.nonzero(inside & ~m[1:-1, 2:])  # right edge
    for r, c in zip(rr, cc):
        add((r + 1, c + 1), (r, c + 1))
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        cur = start
        while True:
            outs = nxt[cur]
            b = outs.pop()
            if not outs:
                del nxt[cur]
            if b == start:
                break
            loop.append(b)
            cur = b
        pts = np.array(loop, dtype=float)
        # drop vertices in the middle of straight runs
        prev, after = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
        turn = np.abs((pts - prev)[:, 0] * (after - pts)[:, 1] - (pts - prev)[:, 1] * (after - pts)[:, 0]) > 0
        loops.append(pts[turn] - 0.5)
    return loops


def write_rtstruct(
    path: str | Path,
    ct: Volume,
    rois: Mapping[str, np.ndarray | Structure],
    *,
    label: str = "Workbench",
    colors: Mapping[str, tuple[int, int, int]] | None = None,
) -> Path:
    """Write masks on ``ct``'s grid as an RT Structure Set referring to the CT series.

    ``ct`` should come from :func:`read_ct_series` or :func:`write_ct_series` (its meta
    holds the study, series and per-slice SOP instance UIDs the contours refer to).
    """
    path = Path(path)
    frame = ct.frame_of_reference_uid
    if not frame:
        raise InputError(ct.source or path, "the CT has no FrameOfReferenceUID to refer to")
    sops = list(ct.meta.get("sop_instance_uids", []))
    if len(sops) != ct.shape[0]:
        raise InputError(ct.source or path, "the CT's slice UIDs are unknown (read it with read_ct_series)")
    sop_class = ct.meta.get("sop_class_uid", D.CT_IMAGE_STORAGE)
    palette = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 200, 0), (200, 0, 200), (0, 200, 200)]

    ds = D.new_file_dataset(D.RT_STRUCTURE_SET_STORAGE)
    D.copy_patient_and_study(ds, ct.meta)
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "Distillation Workbench"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label[:16]
    ds.StructureSetDate = ds.InstanceCreationDate
    ds.StructureSetTime = ds.InstanceCreationTime

    images = []
    for uid in sops:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = uid
        images.append(item)
    series_item = Dataset()
    series_item.SeriesInstanceUID = ct.meta.get("series_instance_uid", "")
    series_item.ContourImageSequence = Sequence(images)
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = D.STUDY_COMPONENT_MANAGEMENT
    study_item.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    study_item.RTReferencedSeriesSequence = Sequence([series_item])
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = frame
    frame_item.RTReferencedStudySequence = Sequence([study_item])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame_item])

    roi_items, contour_items, obs_items = [], [], []
    for number, (name, value) in enumerate(rois.items(), start=1):
        s = value if isinstance(value, Structure) else Structure(name, np.asarray(value))
        mask = np.asarray(s.mask, dtype=bool)
        if mask.shape != ct.shape:
            raise ValueError(f"mask {name!r} has shape {mask.shape}, the CT {ct.shape}")
        color = (colors or {}).get(name) or (s.color if isinstance(value, Structure) else palette[(number - 1) % len(palette)])
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame
        roi.ROIName = name[:64]
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_items.append(roi)
        contours = []
        for k in np.nonzero(mask.any(axis=(1, 2)))[0]:
            for loop in mask_outlines(mask[k]):
                world = ct.index_to_world(np.column_stack([np.full(len(loop), k), loop]))
                c = Dataset()
                img = Dataset()
                img.ReferencedSOPClassUID = sop_class
                img.ReferencedSOPInstanceUID = sops[k]
                c.ContourImageSequence = Sequence([img])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(loop)
                c.ContourData = [f"{v:.4f}".rstrip("0").rstrip(".") for v in world.ravel()]
                contours.append(c)
        rc = Dataset()
        rc.ROIDisplayColor = [int(x) for x in color]
        if contours:
            rc.ContourSequence = Sequence(contours)
        rc.ReferencedROINumber = number
        contour_items.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = (s.interpreted_type if isinstance(value, Structure) else "") or "ORGAN"
        obs.ROIInterpreter = ""
        obs_items.append(obs)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(obs_items)
    return D.save(ds, path)
