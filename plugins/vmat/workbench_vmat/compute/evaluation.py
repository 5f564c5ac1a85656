"""How a predicted patient dose is judged against the reference (ground-truth) dose.

Per case (:func:`evaluate_case`):

- ``gamma_2_2``, ``gamma_3_3``, ``gamma_1_1``: 3-D global gamma pass rates (%) at 2%/2mm,
  3%/3mm and 1%/1mm (compute/gamma.py). The dose criterion is a percentage of the
  prescription when one is given, else of the reference maximum (the same normalisation
  as the cohort's input-vs-reference figures); reference points below 10 % of the
  reference maximum are not evaluated.
- ``mae_high_dose_pct``: mean absolute difference over the high-dose region, the voxels
  where the reference is at least 80 % of the prescription (of the reference maximum when
  there is none), as a percentage of that same dose; ``mean_diff_high_dose_pct`` is the
  signed mean (positive: the prediction is hotter).
- per structure: ``dvh/<name>/D95``, ``dvh/<name>/Dmean``, ``dvh/<name>/D2`` of the
  predicted dose (Gy) and ``dvh/<name>/<stat>_error`` = predicted - reference (Gy).

:func:`summarise` gives mean, sample sd and count per metric over cases;
:func:`load_case_doses` reads a run's ``predictions/<case>.npz`` and checks it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from workbench.api import InputError

from .dvh import dvh_metrics
from .gamma import gamma

__all__ = ["CRITERIA", "HIGH_DOSE_FRACTION", "LOW_DOSE_CUTOFF_PCT", "SUBJECTS", "evaluate_case", "gamma_map",
           "summarise", "load_case_doses", "read_evaluation", "ordered_subjects", "DOSE_ARRAYS"]

#: (metric key, dose difference %, distance to agreement mm)
CRITERIA: tuple[tuple[str, float, float], ...] = (("gamma_2_2", 2.0, 2.0), ("gamma_3_3", 3.0, 3.0),
                                                  ("gamma_1_1", 1.0, 1.0))
LOW_DOSE_CUTOFF_PCT = 10.0
HIGH_DOSE_FRACTION = 0.8
#: the evaluated subjects of a distillation run, in the order tables show them
SUBJECTS = ("input", "teacher", "student", "student_only")
#: dose arrays a predictions file may hold (npz key -> what it is)
DOSE_ARRAYS = {"reference": "reference (ground truth)", "dose_water": "input: dose in water",
               "teacher": "teacher", "student": "student", "student_only": "student-only"}


def _check_pair(reference: Any, predicted: Any, spacing_mm: Any) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    ref = np.asarray(reference, dtype=np.float32)
    pred = np.asarray(predicted, dtype=np.float32)
    if ref.ndim != 3:
        raise ValueError(f"the reference dose must be a 3-D [z, y, x] array, not shape {ref.shape}")
    if pred.shape != ref.shape:
        raise ValueError(f"predicted dose shape {pred.shape} differs from the reference's {ref.shape}")
    for name, a in (("reference", ref), ("predicted", pred)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"the {name} dose contains NaN or infinite values")
    spacing = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)))
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be three positive numbers, not {spacing_mm!r}")
    if float(ref.max()) <= 0:
        raise ValueError("the reference dose is zero everywhere")
    return ref, pred, spacing


def evaluate_case(reference: Any, predicted: Any, spacing_mm: Any, *,
                  structures: Mapping[str, np.ndarray] | None = None,
                  prescription_gy: float | None = None, device: str | None = None) -> dict[str, float]:
    """Metrics of one predicted dose against the reference (both Gy, same ``[z, y, x]`` grid)."""
    ref, pred, spacing = _check_pair(reference, predicted, spacing_mm)
    if prescription_gy is not None and not (math.isfinite(prescription_gy) and prescription_gy > 0):
        raise ValueError(f"prescription_gy must be a positive dose, not {prescription_gy!r}")
    out: dict[str, float] = {}
    for key, dd, dta in CRITERIA:
        # pass/fail needs gamma only up to 1: a search radius just past dta is enough
        r = gamma(ref, pred, spacing=spacing, dd=dd, dta=dta, cutoff=LOW_DOSE_CUTOFF_PCT,
                  prescription=prescription_gy, max_gamma=1.01, device=device)
        out[key] = float(r.pass_rate)
    norm = float(prescription_gy) if prescription_gy is not None else float(ref.max())
    high = ref >= HIGH_DOSE_FRACTION * norm
    diff = (pred - ref)[high].astype(np.float64)
    out["mae_high_dose_pct"] = float(100.0 * np.abs(diff).mean() / norm) if diff.size else float("nan")
    out["mean_diff_high_dose_pct"] = float(100.0 * diff.mean() / norm) if diff.size else float("nan")
    for name, mask in (structures or {}).items():
        mask = np.asarray(mask)
        if mask.shape != ref.shape:
            raise ValueError(f"structure {name!r} has shape {mask.shape}, the dose {ref.shape}")
        if mask.dtype != bool:
            raise ValueError(f"structure {name!r} must be a boolean mask, not {mask.dtype}")
        if not mask.any():
            continue  # an empty structure has no DVH (e.g. an optional one this case lacks)
        p = dvh_metrics(pred, mask, spacing)
        r = dvh_metrics(ref, mask, spacing)
        for stat in ("D95", "Dmean", "D2"):
            out[f"dvh/{name}/{stat}"] = p[stat]
            out[f"dvh/{name}/{stat}_error"] = p[stat] - r[stat]
    return out


def gamma_map(reference: Any, predicted: Any, spacing_mm: Any, dd: float = 2, dta: float = 2, cutoff: float = 10,
              *, prescription_gy: float | None = None, max_gamma: float = 2.0, device: str | None = None) -> np.ndarray:
    """The 3-D gamma map (float32, reference's shape): NaN below the cutoff, capped at ``max_gamma``."""
    ref, pred, spacing = _check_pair(reference, predicted, spacing_mm)
    return gamma(ref, pred, spacing=spacing, dd=dd, dta=dta, cutoff=cutoff, prescription=prescription_gy,
                 max_gamma=max_gamma, device=device).gamma_map


def summarise(per_case: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation (ddof 1; 0 for a single case) and count of every metric
    over the cases; NaN values (e.g. nothing evaluated) are left out of all three."""
    keys = sorted({k for metrics in per_case.values() for k in metrics})
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.array([float(m[key]) for m in per_case.values() if key in m], dtype=np.float64)
        values = values[np.isfinite(values)]
        n = int(values.size)
        out[key] = {"mean": float(values.mean()) if n else float("nan"),
                    "sd": float(values.std(ddof=1)) if n > 1 else 0.0 if n == 1 else float("nan"),
                    "n": n}
    return out


# ---------------------------------------------------------------------------------------
# run artifacts
# ---------------------------------------------------------------------------------------

def load_case_doses(path: str | Path) -> dict[str, Any]:
    """Read one ``predictions/<case>.npz`` (artifact kind ``vmat-case-doses``) and check it.

    Returns ``{"case": id, "ct": HU, "doses": {name: Gy array}, "structures": {name: bool},
    "spacing_mm": (3,), "origin_mm": (3,), "prescription_gy": float | None}``; raises
    InputError naming the file for a missing or corrupt file, missing arrays or mismatched shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "predictions file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"not a readable .npz file: {exc}") from None
    for key in ("ct", "reference", "spacing_mm"):
        if key not in arrays:
            raise InputError(path, f"missing array {key!r} (has: {', '.join(sorted(arrays)) or 'none'})")
    ct = np.asarray(arrays["ct"], dtype=np.float32)
    if ct.ndim != 3:
        raise InputError(path, f"'ct' must be a 3-D [z, y, x] array, not shape {ct.shape}")
    doses: dict[str, np.ndarray] = {}
    for key in DOSE_ARRAYS:
        if key in arrays:
            d = np.asarray(arrays[key], dtype=np.float32)
            if d.shape != ct.shape:
                raise InputError(path, f"{key!r} has shape {d.shape}, the CT {ct.shape}")
            if not np.all(np.isfinite(d)):
                raise InputError(path, f"{key!r} contains NaN or infinite values")
            doses[key] = d
    structures = {}
    for key, value in arrays.items():
        if key.startswith("mask_"):
            if value.shape != ct.shape:
                raise InputError(path, f"{key!r} has shape {value.shape}, the CT {ct.shape}")
            structures[key[5:]] = np.asarray(value, dtype=bool)
    spacing = np.asarray(arrays["spacing_mm"], dtype=np.float64).reshape(-1)
    if spacing.size != 3 or not np.all(spacing > 0):
        raise InputError(path, f"'spacing_mm' must be three positive numbers, not {spacing.tolist()}")
    origin = np.asarray(arrays.get("origin_mm", np.zeros(3)), dtype=np.float64).reshape(-1)
    rx = arrays.get("prescription_gy")
    rx = float(np.asarray(rx).reshape(-1)[0]) if rx is not None and np.asarray(rx).size else None
    return {"case": path.stem, "ct": ct, "doses": doses, "structures": structures, "spacing_mm": tuple(spacing.tolist()),
            "origin_mm": tuple(origin.tolist()), "prescription_gy": rx if rx and rx > 0 else None}


def read_evaluation(path: str | Path) -> dict[str, Any]:
    """Read a run's ``evaluation.json`` (kind ``vmat-evaluation``): ``{"subjects": {subject:
    {"per_case": {case: metrics}, "summary": {...}}}, "footprint": {...}}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "evaluation file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON file: {exc}") from None
    subjects = data.get("subjects") if isinstance(data, dict) else None
    if not isinstance(subjects, dict):
        raise InputError(path, "no 'subjects' object (expected {'subjects': {subject: {'per_case': ...}}})")
    for name, block in subjects.items():
        if not isinstance(block, dict) or not isinstance(block.get("per_case", {}), dict):
            raise InputError(path, f"subject {name!r} has no 'per_case' object")
        if "summary" not in block:
            block["summary"] = summarise(block.get("per_case", {}))
    data.setdefault("footprint", {})
    return data


def ordered_subjects(names: Sequence[str]) -> list[str]:
    """Subjects in the tables' order: input, teacher, student, student-only, then any others."""
    known = [s for s in SUBJECTS if s in names]
    return known + sorted(s for s in names if s not in SUBJECTS)
