"""Cases and cohorts: generate the synthetic demo cohort as DICOM, read and validate cohorts.

A *case* is a CT series, two RTDOSE files on the CT's frame of reference -- the input
(dose computed with the patient as water) and the reference (ground truth) -- and
optionally an RTSTRUCT. A *cohort* is a folder of cases with a manifest, either
``cohort.toml``::

    [cohort]
    name = "vmat-demo"
    [[cases]]
    id = "case_000"
    split = "train"               # train | val | test
    ct = "case_000/ct"            # folder of CT slices (paths relative to the manifest)
    input_dose = "case_000/rtdose_input.dcm"
    reference_dose = "case_000/rtdose_reference.dcm"
    rtstruct = "case_000/rtstruct.dcm"   # optional

or ``cohort.csv`` with the columns ``id, split, ct, input_dose, reference_dose, rtstruct``.

Reading a case (:func:`load_case`) goes through the same DICOM reader as clinical data
and raises a named :class:`~workbench.api.InputError` for each way a case can be
unusable: :class:`MissingFileError`, :class:`ManifestError`,
:class:`FrameOfReferenceMismatch`, :class:`DoseOutsideCTError`, :class:`InvalidDoseError`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import struct
import time
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from workbench.api import InputError, Progress

__all__ = [
    "CaseFiles",
    "Cohort",
    "CohortSettings",
    "DoseOutsideCTError",
    "FrameOfReferenceMismatch",
    "GENERATOR_VERSION",
    "InvalidDoseError",
    "LoadedCase",
    "ManifestError",
    "MissingFileError",
    "SPLITS",
    "case_metrics",
    "check_dose",
    "check_frames",
    "cohort_key",
    "generate_cohort",
    "load_case",
    "read_cohort",
    "render_dose_png",
    "write_manifest",
    "write_png",
]

#: bump when anything that changes generated data changes; part of the cache key
GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST_TOML = "cohort.toml"
MANIFEST_CSV = "cohort.csv"
SUMMARY = "summary.json"


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------

class MissingFileError(InputError):
    """A file or folder the manifest names does not exist."""


class ManifestError(InputError):
    """The manifest is unreadable or malformed (missing column, unknown split, duplicate id)."""


class FrameOfReferenceMismatch(InputError):
    """A dose or structure set is not on the CT's frame of reference."""


class DoseOutsideCTError(InputError):
    """A dose grid extends beyond (or lies outside) the CT volume."""


class InvalidDoseError(InputError):
    """A dose contains NaN/Inf or negative values, or is all zero."""


# ---------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseFiles:
    id: str
    split: str
    ct: Path
    input_dose: Path
    reference_dose: Path
    rtstruct: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class Cohort:
    root: Path
    manifest: Path
    cases: list[CaseFiles]
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[CaseFiles]:
        return [c for c in self.cases if c.split == name]

    def case(self, case_id: str) -> CaseFiles:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)


def _manifest_path(path: Path) -> Path:
    if path.is_dir():
        for name in (MANIFEST_TOML, MANIFEST_CSV):
            if (path / name).is_file():
                return path / name
        raise MissingFileError(path, f"no manifest ({MANIFEST_TOML} or {MANIFEST_CSV}) in this folder")
    if not path.is_file():
        raise MissingFileError(path, "cohort manifest not found")
    return path


def read_cohort(path: str | Path, *, check_files: bool = True) -> Cohort:
    """Read a cohort manifest (a folder holding one, or the file itself) and check it.

    Relative paths are relative to the manifest's folder. With ``check_files``, every
    named file must exist (:class:`MissingFileError`).
    """
    manifest = _manifest_path(Path(path))
    root = manifest.parent
    meta: dict[str, Any] = {}
    rows: list[dict[str, Any]]
    try:
        if manifest.suffix.lower() == ".toml":
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
            meta = dict(data.get("cohort", {}))
            rows = list(data.get("cases", []))
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ManifestError(manifest, "[[cases]] must be a list of tables")
        elif manifest.suffix.lower() == ".csv":
            with manifest.open(newline="", encoding="utf-8") as fh:
                rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(fh)]
        else:
            raise ManifestError(manifest, "manifest must be .toml or .csv")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(manifest, f"cannot parse: {exc}") from None
    if not rows:
        raise ManifestError(manifest, "lists no cases")
    cases: list[CaseFiles] = []
    seen: set[str] = set()
    for n, r in enumerate(rows, 1):
        where = f"case #{n}"
        for key in ("id", "split", "ct", "input_dose", "reference_dose"):
            if not str(r.get(key, "")).strip():
                raise ManifestError(manifest, f"{where}: missing '{key}'")
        cid = str(r["id"])
        if cid in seen:
            raise ManifestError(manifest, f"duplicate case id {cid!r}")
        seen.add(cid)
        split = str(r["split"]).lower()
        if split not in SPLITS:
            raise ManifestError(manifest, f"case {cid!r}: split {r['split']!r} is not one of {', '.join(SPLITS)}")
        resolve = lambda p: (root / str(p)).resolve() if not Path(str(p)).is_absolute() else Path(str(p))  # noqa: E731
        struct_path = resolve(r["rtstruct"]) if str(r.get("rtstruct", "") or "").strip() else None
        extra = {k: v for k, v in r.items() if k not in ("id", "split", "ct", "input_dose", "reference_dose", "rtstruct")}
        case = CaseFiles(cid, split, resolve(r["ct"]), resolve(r["input_dose"]), resolve(r["reference_dose"]),
                         struct_path, extra)
        if check_files:
            for label, p in (("CT", case.ct), ("input dose", case.input_dose), ("reference dose", case.reference_dose),
                             ("RTSTRUCT", case.rtstruct)):
                if p is not None and not p.exists():
                    raise MissingFileError(p, f"{label} of case {cid!r} not found (manifest {manifest})")
        cases.append(case)
    return Cohort(root=root, manifest=manifest, cases=cases, meta=meta)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v) if math.isfinite(v) else '"nan"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def write_manifest(root: str | Path, cases: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> Path:
    """Write ``cohort.toml`` (paths relative to ``root``) and return its path."""
    root = Path(root)
    lines = ["# Distillation Workbench VMAT cohort", "[cohort]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in (meta or {}).items() if v is not None]
    for c in cases:
        lines += ["", "[[cases]]"]
        for k, v in c.items():
            if v is None:
                continue
            if isinstance(v, Path):
                v = v.relative_to(root).as_posix() if v.is_absolute() else v.as_posix()
            lines.append(f"{k} = {_toml_value(v)}")
    path = root / MANIFEST_TOML
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------
# validation (pure array/geometry checks, so they work on any reader's output)
# ---------------------------------------------------------------------------------------

def check_frames(ct_path: Path | str, ct_frame: str | None, other_path: Path | str, other_frame: str | None,
                 what: str = "dose") -> None:
    """The CT and a dose/structure set must share a FrameOfReferenceUID."""
    if not ct_frame or not other_frame:
        raise FrameOfReferenceMismatch(other_path, f"{what} or its CT ({ct_path}) has no FrameOfReferenceUID")
    if str(ct_frame) != str(other_frame):
        raise FrameOfReferenceMismatch(
            other_path, f"{what} is on frame of reference {other_frame}, the CT ({ct_path}) on {ct_frame}")


def check_dose(path: Path | str, dose: np.ndarray, *, dose_volume: Any = None, ct_volume: Any = None,
               tolerance_mm: float | None = None) -> None:
    """Dose values must be finite, non-negative and not all zero; its grid must lie in the CT.

    ``dose_volume`` and ``ct_volume`` are :class:`~workbench_vmat.compute.volume.Volume`
    geometries (any orientation). The dose grid may be smaller than the CT but its voxel
    centres may not lie outside the CT's voxels by more than ``tolerance_mm`` (default:
    half a CT voxel beyond the outermost voxel centres).
    """
    d = np.asarray(dose)
    if d.size == 0:
        raise InvalidDoseError(path, "dose grid is empty")
    bad = ~np.isfinite(d)
    if bad.any():
        raise InvalidDoseError(path, f"dose has {int(bad.sum())} NaN/Inf voxels")
    neg = d < 0
    if neg.any():
        raise InvalidDoseError(path, f"dose has {int(neg.sum())} negative voxels (minimum {float(d.min()):.4g})")
    if not (d > 0).any():
        raise InvalidDoseError(path, "dose is zero everywhere")
    if dose_volume is None or ct_volume is None:
        return
    ct_sp = np.asarray(ct_volume.spacing, float)
    tol = (0.5 * ct_sp) if tolerance_mm is None else np.full(3, float(tolerance_mm))
    idx = ct_volume.world_to_index(dose_volume.corners_world())  # (8, 3) in CT (k, i, j)
    n = np.asarray(ct_volume.shape, float)
    lo_mm = (-idx) * ct_sp  # how far below index 0, mm
    hi_mm = (idx - (n - 1)) * ct_sp  # how far above the last index, mm
    names = ("slice (z)", "row (y)", "column (x)")
    out = [f"{names[a]} direction: {max(lo_mm[:, a].max(), hi_mm[:, a].max()):.1f} mm beyond the CT"
           for a in range(3) if lo_mm[:, a].max() > tol[a] + 1e-6 or hi_mm[:, a].max() > tol[a] + 1e-6]
    if out:
        raise DoseOutsideCTError(path, "dose grid extends outside the CT (" + "; ".join(out) + ")")


# ---------------------------------------------------------------------------------------
# DICOM through the plugin's reader/writers (dicom_io, maintained beside this module)
# ---------------------------------------------------------------------------------------

def _dicom():
    from . import dicom_io  # noqa: PLC0415 (pydicom is imported only when DICOM is read or written)

    return dicom_io


@dataclass
class LoadedCase:
    """A case read and validated; doses resampled onto the CT grid, arrays ``[z, y, x]``."""

    id: str
    split: str
    ct: Any  # dicom_io.Volume (HU)
    input_dose: np.ndarray  # Gy, on the CT grid
    reference_dose: np.ndarray  # Gy, on the CT grid
    structures: dict[str, np.ndarray] | None = None
    files: CaseFiles | None = None


def _read_dose(io, path: Path):
    try:
        return io.read_rtdose(path)
    except InputError as exc:
        if "NaN" in exc.problem or "negative" in exc.problem or "infinite" in exc.problem:
            raise InvalidDoseError(exc.path, exc.problem) from None
        raise


def load_case(case: CaseFiles, *, structures: bool = True) -> LoadedCase:
    """Read a case through the plugin's DICOM reader and validate it.

    Raises :class:`MissingFileError`, :class:`FrameOfReferenceMismatch` (a dose or the
    structure set on another frame than the CT), :class:`DoseOutsideCTError`,
    :class:`InvalidDoseError` (NaN, negative or all-zero dose); a corrupt file gives the
    reader's InputError.
    """
    io = _dicom()
    for label, p in (("CT", case.ct), ("input dose", case.input_dose), ("reference dose", case.reference_dose),
                     ("RTSTRUCT", case.rtstruct if structures else None)):
        if p is not None and not p.exists():
            raise MissingFileError(p, f"{label} of case {case.id!r} not found")
    ct = io.read_ct_series(case.ct)
    doses = []
    for p in (case.input_dose, case.reference_dose):
        dose = _read_dose(io, p)
        check_frames(case.ct, ct.frame_of_reference_uid, p, dose.frame_of_reference_uid, "dose")
        check_dose(p, dose.array, dose_volume=dose, ct_volume=ct)
        doses.append(np.asarray(io.resample(dose, ct, fill=0.0).array, np.float32))
    masks = None
    if structures and case.rtstruct is not None:
        try:
            rois = io.read_rtstruct(case.rtstruct, ct)
        except InputError as exc:
            if "frame of reference" in exc.problem:
                raise FrameOfReferenceMismatch(exc.path, exc.problem) from None
            raise
        masks = {name: np.asarray(s.mask, bool) for name, s in rois.items()}
    return LoadedCase(case.id, case.split, ct, doses[0], doses[1], masks, case)


# ---------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------

def case_metrics(reference: np.ndarray, evaluation: np.ndarray, spacing_mm, prescription_gy: float,
                 *, device: str = "cpu") -> dict[str, float]:
    """Input-vs-reference agreement: gamma 2%/2mm and 1%/1mm (global, % of the
    prescription, 10 % cutoff) and the mean absolute difference where the reference
    is >= 80 % of the prescription (% of the prescription)."""
    from .gamma import gamma

    out: dict[str, float] = {}
    for dd, dta in ((2.0, 2.0), (1.0, 1.0)):
        r = gamma(reference, evaluation, spacing=tuple(float(s) for s in spacing_mm), dd=dd, dta=dta, cutoff=10.0,
                  prescription=prescription_gy, max_gamma=1.01, interp_fraction=5, device=device)
        out[f"gamma_{int(dd)}%/{int(dta)}mm"] = float(r.pass_rate)
    hi = reference >= 0.8 * prescription_gy
    out["mae_high_dose_pct"] = float(100.0 * np.abs(reference - evaluation)[hi].mean() / prescription_gy) if hi.any() else float("nan")
    out["mean_diff_high_dose_pct"] = float(100.0 * (evaluation - reference)[hi].mean() / prescription_gy) if hi.any() else float("nan")
    return out


# ---------------------------------------------------------------------------------------
# PNG (no matplotlib, no Qt)
# ---------------------------------------------------------------------------------------

def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``[h, w, 3]`` uint8 image as an 8-bit RGB PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [h, w, 3] image, got {rgb.shape}")
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    path = Path(path)
    path.write_bytes(png)
    return path


def _jet(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)[..., None]
    r = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    return np.concatenate([r, g, b], -1)


def render_dose_png(path: str | Path, hu: np.ndarray, dose: np.ndarray, prescription_gy: float,
                    outlines: dict[str, np.ndarray] | None = None, scale: int = 4, title_bar: bool = True) -> Path:
    """One axial slice: CT (W 400 / L 40) with a dose colour wash from 30 % to 110 % of the
    prescription, structure outlines, and a colour bar along the bottom."""
    from scipy import ndimage

    ct = ndimage.zoom(hu.astype(np.float32), scale, order=1)
    ds = ndimage.zoom(dose.astype(np.float32), scale, order=1) / prescription_gy
    gray = np.clip((ct - (40 - 200)) / 400.0, 0, 1)[..., None] * np.ones(3)
    rel = (ds - 0.2) / 0.9
    alpha = np.where(ds >= 0.3, 0.5, 0.0)[..., None]
    img = gray * (1 - alpha) + _jet(rel) * alpha
    colours = {"PTV": (1.0, 0.1, 0.1), "CTV": (1.0, 0.6, 0.0), "Rectum": (0.6, 0.4, 0.2), "Bladder": (1.0, 1.0, 0.0),
               "FemoralHead_L": (0.2, 1.0, 0.2), "FemoralHead_R": (0.2, 1.0, 0.2), "BODY": (0.6, 0.6, 0.6)}
    for name, mask in (outlines or {}).items():
        m = ndimage.zoom(mask.astype(np.uint8), scale, order=0).astype(bool)
        edge = m & ~ndimage.binary_erosion(m)
        img[edge] = colours.get(name, (1.0, 1.0, 1.0))
    # isodose lines at 95 % and 50 %
    for level, col in ((0.95, (1.0, 1.0, 1.0)), (0.5, (0.3, 0.8, 1.0))):
        m = ds >= level
        img[m & ~ndimage.binary_erosion(m)] = col
    if title_bar:
        w = img.shape[1]
        bar = np.tile(_jet(np.linspace(0, 1, w))[None], (12, 1, 1))
        img = np.concatenate([img, np.zeros((4, w, 3)), bar], 0)
    return write_png(path, (img * 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CohortSettings:
    """Everything that determines a generated cohort (its cache key)."""

    preset: str = "demo"
    cases: int = 8
    spacing_mm: float = 4.0
    seed: int = 0
    reference: str = "monte-carlo"  # monte-carlo | pencil-beam
    histories: int = 10_000_000
    denoise_sigma_mm: float = 2.4  # Gaussian smoothing of the Monte Carlo dose to water; 0: none
    cp_spacing_deg: float = 4.0
    prescription_gy: float = 2.0
    splits: tuple[str, ...] = ()  # empty: 70/15/15 train/val/test

    def key(self) -> str:
        return cohort_key(self)


def cohort_key(s: CohortSettings) -> str:
    blob = json.dumps({**s.__dict__, "generator": GENERATOR_VERSION}, sort_keys=True, default=list)
    tag = f"{s.preset}-{s.cases}c-{s.spacing_mm:g}mm-seed{s.seed}-{s.reference}"
    return f"{tag}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def assign_splits(n: int, seed: int, splits: tuple[str, ...] = ()) -> list[str]:
    """Split labels per case: given ones, else 70/15/15 (at least one val and test case)."""
    if splits:
        if len(splits) != n:
            raise ValueError(f"{len(splits)} split labels for {n} cases")
        return list(splits)
    n_test = max(1, int(round(0.15 * n)))
    n_val = max(1, int(round(0.15 * n))) if n >= 3 else 0
    labels = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    order = np.random.default_rng([int(seed), 0x5B1]).permutation(n)
    return [labels[int(k)] for k in np.argsort(order)]


def _uid(*parts: Any) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["workbench-vmat-cohort", *map(str, parts)])


def _write_case_dicom(case_dir: Path, case_id: str, phantom, input_dose: np.ndarray, reference_dose: np.ndarray,
                      seed: int, reference_text: str) -> dict[str, Path]:
    """CT series, two RTDOSE and an RTSTRUCT on one frame of reference (UIDs derived from
    the seed and case id, so a regenerated cohort keeps its study/series/frame UIDs)."""
    io = _dicom()
    frame = _uid(seed, case_id, "frame")
    study = _uid(seed, case_id, "study")
    meta = {"patient_name": f"Synthetic^Pelvis^{case_id}", "patient_id": f"VMAT-{seed}-{case_id}",
            "study_instance_uid": study, "patient_sex": "M", "study_id": case_id[-3:]}
    ct = io.Volume(phantom.hu, origin=phantom.origin_mm, spacing=phantom.spacing_mm, frame_of_reference_uid=frame,
                   meta=meta)
    io.write_ct_series(case_dir / "ct", ct, series_instance_uid=_uid(seed, case_id, "ct"),
                       series_description="Synthetic male pelvis CT")
    inp = io.write_rtdose(case_dir / "rtdose_input.dcm", ct.with_array(input_dose.astype(np.float32)), reference=ct,
                          series_description="Input: pencil beam, patient as water",
                          comment="input: dose to water, patient as water (pydosert)")
    ref = io.write_rtdose(case_dir / "rtdose_reference.dcm", ct.with_array(reference_dose.astype(np.float32)),
                          reference=ct, series_description="Reference: " + reference_text[:52],
                          comment="reference: " + reference_text)
    rois = {name: mask for name, mask in phantom.masks.items()}
    colors = {"BODY": (128, 128, 128), "PTV": (255, 0, 0), "CTV": (255, 140, 0), "Prostate": (255, 200, 0),
              "SeminalVesicles": (200, 0, 200), "Bladder": (255, 255, 0), "Rectum": (150, 100, 50),
              "FemoralHead_L": (0, 200, 0), "FemoralHead_R": (0, 160, 0), "Prosthesis": (0, 200, 255)}
    rs = io.write_rtstruct(case_dir / "rtstruct.dcm", ct, rois, label="Synthetic", colors=colors)
    return {"ct": case_dir / "ct", "input_dose": Path(inp), "reference_dose": Path(ref), "rtstruct": Path(rs)}


@dataclass
class _Pending:
    """A case on its way: phantom and plan made, doses computed as they come."""

    index: int
    id: str
    dir: Path
    phantom: Any
    anatomy: Any
    plan: Any
    n_arcs: int
    t0: float
    d_in: np.ndarray | None = None
    t_in: float = 0.0


def generate_cohort(root: str | Path, settings: CohortSettings, *, device: str = "cpu", mc_home: str | Path | None = None,
                    log=None) -> Iterator[Progress]:
    """Generate (or finish generating) a cohort into ``root``; yields Progress.

    Cases are written into ``root`` as they complete (a ``done.json`` marks each), so a
    cancelled generation resumes where it stopped; the manifest and ``summary.json`` are
    written last. With the Monte Carlo reference, one case's Monte Carlo runs in a child
    process while this process computes the next cases' input doses and writes the
    finished ones, so two cores are kept busy.
    """
    from .dose_input import input_dose_steps
    from .dose_reference import pencil_reference_steps, start_monte_carlo

    say = log or (lambda msg: None)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    s = settings
    labels = assign_splits(s.cases, s.seed, s.splits)
    total = float(s.cases * 10)
    done_units = {"n": 0.0}
    infos: dict[int, dict[str, Any]] = {}
    t_start = time.time()

    def progress(msg: str, extra: float = 0.0) -> Progress:
        return Progress(min(done_units["n"] + extra, total), total, msg, "cohort")

    todo: list[int] = []
    for i in range(s.cases):
        done_file = root / f"case_{i:03d}" / "done.json"
        if done_file.is_file():
            infos[i] = json.loads(done_file.read_text())
            done_units["n"] += 10
        else:
            todo.append(i)
    if infos:
        yield progress(f"{len(infos)} case(s) already generated")

    def prepare(i: int) -> _Pending:
        from .phantom import _dilate_mm, make_phantom, sample_anatomy
        from .plan import conformal_plan

        case_id = f"case_{i:03d}"
        case_dir = root / case_id
        if case_dir.exists():
            shutil.rmtree(case_dir)
        case_dir.mkdir(parents=True)
        anatomy = sample_anatomy(s.seed, i)
        phantom = make_phantom(s.seed, i, s.spacing_mm, anatomy=anatomy)
        n_arcs = 2 if np.random.default_rng([s.seed, i, 0xA2C]).uniform() < 0.6 else 1
        plan = conformal_plan(phantom.masks["PTV"], phantom.spacing_mm, phantom.origin_mm, phantom.isocenter_mm,
                              avoid=_dilate_mm(phantom.masks["Rectum"], phantom.spacing_mm, 3.0), n_arcs=n_arcs,
                              cp_spacing_deg=s.cp_spacing_deg, seed=s.seed * 1000 + i, prescription_gy=s.prescription_gy)
        done_units["n"] += 1
        return _Pending(i, case_id, case_dir, phantom, anatomy, plan, n_arcs, time.time())

    def describe(c: _Pending) -> str:
        pros = "no" if c.anatomy.prosthesis == "none" else c.anatomy.prosthesis
        return (f"{c.id}: {c.n_arcs} arc{'s' if c.n_arcs > 1 else ''}, {pros} hip prosthesis, "
                f"{c.phantom.meta['gas_cc']:.0f} cm3 rectal gas")

    def input_dose(c: _Pending) -> Iterator[Progress]:
        t = time.time()
        gen = input_dose_steps(c.phantom.masks["BODY"], c.phantom.spacing_mm, c.phantom.origin_mm, c.plan,
                               device=device)
        while True:
            try:
                frac = next(gen)
            except StopIteration as stop:
                c.d_in = stop.value
                break
            yield progress(f"{describe(c)}: input dose (water)", 3 * frac)
        c.t_in = time.time() - t
        done_units["n"] += 3

    def finish(c: _Pending, d_ref: np.ndarray, t_ref: float, extra: dict[str, Any]) -> dict[str, Any]:
        """Normalise, measure, write DICOM + preview + done.json."""
        ctv = c.phantom.masks["CTV"]
        k = s.prescription_gy / float(np.median(d_ref[ctv]))  # the CTV median gets the prescription
        d_in = (c.d_in * k).astype(np.float32)
        d_ref = (d_ref * k).astype(np.float32)
        plan = c.plan.scaled(k)
        metrics = case_metrics(d_ref, d_in, c.phantom.spacing_mm, s.prescription_gy)
        (c.dir / "plan.json").write_text(plan.to_json())
        info = {"id": c.id, "split": labels[c.index], "anatomy": c.anatomy.to_dict(), "phantom": c.phantom.meta,
                "arcs": c.n_arcs, "control_points": plan.n_control_points, "total_mu": plan.total_mu,
                "isocenter_mm": list(plan.isocenter_mm), "metrics": metrics,
                "seconds": {"input": c.t_in, "reference": t_ref}, **extra}
        files = _write_case_dicom(c.dir, c.id, c.phantom, d_in, d_ref, s.seed, _reference_text(s))
        info["files"] = {name: Path(v).relative_to(root).as_posix() for name, v in files.items()}
        k_iso = _iso_slice(c.phantom)
        preview = render_dose_png(c.dir / "preview.png", c.phantom.hu[k_iso], d_ref[k_iso], s.prescription_gy,
                                  outlines={n: c.phantom.masks[n][k_iso]
                                            for n in ("PTV", "Rectum", "Bladder", "FemoralHead_L", "FemoralHead_R")})
        info["files"]["preview"] = preview.relative_to(root).as_posix()
        info["seconds"]["case"] = time.time() - c.t0
        (c.dir / "done.json").write_text(json.dumps(info, indent=1))
        say(f"{c.id} ({labels[c.index]}; {describe(c).split(': ', 1)[1]}): gamma 2%/2mm {metrics['gamma_2%/2mm']:.1f} %, "
            f"1%/1mm {metrics['gamma_1%/1mm']:.1f} %, high-dose MAE {metrics['mae_high_dose_pct']:.2f} % "
            f"[input {c.t_in:.0f} s, reference {t_ref:.0f} s]")
        return info

    if s.reference != "monte-carlo":
        for i in todo:
            c = prepare(i)
            yield progress(describe(c))
            yield from input_dose(c)
            t = time.time()
            gen = pencil_reference_steps(c.phantom.hu, c.phantom.masks["BODY"], c.phantom.spacing_mm,
                                         c.phantom.origin_mm, c.plan, device=device, refine=1)
            while True:
                try:
                    frac = next(gen)
                except StopIteration as stop:
                    d_ref = stop.value
                    break
                yield progress(f"{describe(c)}: pencil-beam reference", 5 * frac)
            done_units["n"] += 5
            yield progress(f"{c.id}: writing DICOM")
            infos[i] = finish(c, d_ref, time.time() - t, {})
            done_units["n"] += 1
            yield progress(f"{c.id}: done")
    else:
        home = Path(mc_home) if mc_home else root / ".pyradmc-home"
        calibration_file = home / "vmat-mc-calibration.json"
        queue = [prepare(i) for i in todo[:1]]
        ahead: list[_Pending] = []  # prepared cases waiting for their Monte Carlo
        job = None
        running: _Pending | None = None
        t_job = 0.0
        try:
            nxt = 1
            while queue or ahead or running is not None:
                if running is None and (ahead or queue):
                    running = ahead.pop(0) if ahead else queue.pop(0)
                    yield progress(describe(running))
                    job = start_monte_carlo(running.phantom.hu, running.phantom.masks["BODY"], running.phantom.spacing_mm,
                                            running.phantom.origin_mm, running.plan, histories=s.histories,
                                            seed=(s.seed * 7919 + running.index) % (2 ** 31), device=device, home=home,
                                            workdir=running.dir / ".mc", calibration_file=calibration_file)
                    t_job = time.time()
                # while the Monte Carlo runs: the running case's input dose, then the next cases'
                if running is not None and running.d_in is None:
                    yield from input_dose(running)
                    continue
                if job is not None and not job.done and nxt < len(todo) and len(ahead) < 8:
                    c = prepare(todo[nxt])
                    nxt += 1
                    yield progress(describe(c))
                    yield from input_dose(c)
                    ahead.append(c)
                    continue
                if job is not None and not job.done:
                    yield progress(f"{running.id}: Monte Carlo reference ({job.status()})",  # type: ignore[union-attr]
                                   5 * job.progress())
                    time.sleep(1.0)
                    continue
                if job is not None and running is not None:
                    res = job.result()
                    t_ref = time.time() - t_job
                    job = None
                    c, running = running, None
                    done_units["n"] += 5
                    # start the next Monte Carlo before writing this case
                    if not ahead and nxt < len(todo):
                        ahead.append(prepare(todo[nxt]))
                        nxt += 1
                    if ahead:
                        running = ahead.pop(0)
                        job = start_monte_carlo(running.phantom.hu, running.phantom.masks["BODY"],
                                                running.phantom.spacing_mm, running.phantom.origin_mm, running.plan,
                                                histories=s.histories, seed=(s.seed * 7919 + running.index) % (2 ** 31),
                                                device=device, home=home, workdir=running.dir / ".mc",
                                                calibration_file=calibration_file)
                        t_job = time.time()
                    yield progress(f"{c.id}: writing DICOM")
                    d_ref = res["dose"]
                    hi = d_ref >= 0.5 * d_ref[c.phantom.masks["CTV"]].mean()
                    extra = {"mc_histories": res["histories"], "mc_seconds": res["seconds"],
                             "mc_device": res.get("device"),
                             "mc_relative_sigma_50pct": float(np.median(res["sigma"][hi] / np.maximum(d_ref[hi], 1e-12)))
                             if hi.any() else float("nan")}
                    if s.denoise_sigma_mm > 0:
                        sigma_vox = tuple(s.denoise_sigma_mm / v for v in c.phantom.spacing_mm)
                        d_ref = _denoise(d_ref, c.phantom.hu, c.phantom.masks["BODY"], sigma_vox)
                    infos[c.index] = finish(c, d_ref, t_ref, extra)
                    shutil.rmtree(c.dir / ".mc", ignore_errors=True)
                    done_units["n"] += 1
                    yield progress(f"{c.id}: done")
        finally:
            if job is not None:
                job.kill()
    cases_meta = [infos[i] for i in sorted(infos)]
    rows = []
    for info in cases_meta:
        f = info["files"]
        rows.append({"id": info["id"], "split": info["split"], "ct": f["ct"], "input_dose": f["input_dose"],
                     "reference_dose": f["reference_dose"], "rtstruct": f.get("rtstruct"),
                     "plan": f"{info['id']}/plan.json", "prosthesis": info["anatomy"]["prosthesis"]})
    summary = {"settings": {**s.__dict__, "splits": list(s.splits)}, "generator_version": GENERATOR_VERSION,
               "seconds": time.time() - t_start, "cases": cases_meta, "aggregate": aggregate_metrics(cases_meta)}
    (root / SUMMARY).write_text(json.dumps(summary, indent=1))
    write_manifest(root, rows, {"name": f"vmat-{s.preset}", "generator_version": GENERATOR_VERSION,
                                "preset": s.preset, "seed": s.seed, "spacing_mm": s.spacing_mm,
                                "reference": s.reference, "prescription_gy": s.prescription_gy,
                                "input": "pencil beam (pydosert), patient as water, simple machine",
                                "reference_description": _reference_text(s)})
    yield Progress(total, total, f"{len(cases_meta)} cases ready", "cohort")


def _reference_text(s: CohortSettings) -> str:
    if s.reference == "monte-carlo":
        text = f"Monte Carlo (pyRadMC), {s.histories:.3g} histories, dose to medium"
        return text + (f", Gaussian denoising sigma {s.denoise_sigma_mm:g} mm" if s.denoise_sigma_mm > 0 else "")
    return "heterogeneous pencil beam (pydosert PencilDepthEngine), clinical machine, dose to medium"


def aggregate_metrics(cases_meta: list[dict[str, Any]]) -> dict[str, float]:
    keys = sorted({k for c in cases_meta for k in c.get("metrics", {})})
    return {k: float(np.nanmean([c["metrics"][k] for c in cases_meta if k in c["metrics"]])) for k in keys}


def _iso_slice(phantom) -> int:
    z0 = phantom.origin_mm[2]
    return int(round((phantom.isocenter_mm[2] - z0) / phantom.spacing_mm[0]))


def _denoise(dose_medium: np.ndarray, hu: np.ndarray, body: np.ndarray, sigma_vox) -> np.ndarray:
    """Gaussian smoothing of the dose to water inside the body, then back to dose to medium
    (so the medium's stopping-power step at bone and metal edges stays sharp)."""
    from scipy import ndimage

    from .dose_reference import dose_to_medium

    ones = np.ones(hu.shape, np.float32)
    to_medium = dose_to_medium(ones, hu)  # 1 / s_w,m per voxel
    dw = dose_medium / to_medium
    bf = body.astype(np.float32)
    num = ndimage.gaussian_filter(dw * bf, sigma_vox)
    den = ndimage.gaussian_filter(bf, sigma_vox)
    out = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0) * to_medium
    out[~body] = 0.0
    return out.astype(np.float32)


def cohort_ready(root: str | Path) -> bool:
    root = Path(root)
    return (root / MANIFEST_TOML).is_file() and (root / SUMMARY).is_file()


def remove_tree(path: str | Path) -> None:
    if Path(path).exists():
        shutil.rmtree(path, ignore_errors=True)

