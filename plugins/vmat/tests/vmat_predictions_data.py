"""Synthetic run artifacts for the evaluation, report and view tests: a small pelvis-like CT,
a conformal reference dose around a spherical target, and predictions that differ from it
the way models do (the dose in water: too cold/hot behind bone; the student: shifted and
noisy; the teacher: a little noise only). Written as the distill pipeline writes them:
``predictions/<case>.npz`` and ``evaluation.json``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.ndimage import shift

SHAPE = (20, 36, 40)  # z, y, x
SPACING = (4.0, 4.0, 4.0)
RX = 70.0


def synthetic_case(seed: int = 0, shape=SHAPE, spacing=SPACING, rx: float = RX) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    centre = rng.normal(0.0, 3.0, 3)
    body = (y / (0.45 * ny * spacing[1])) ** 2 + (x / (0.47 * nx * spacing[2])) ** 2 <= 1.0
    ct = np.where(body, 20.0, -1000.0).astype(np.float32)
    bone = ((y - 10) ** 2 + (np.abs(x) - 45) ** 2) <= 12.0**2
    ct[bone & body] = 700.0 + 100 * seed
    r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    radius = 18.0 + 2.0 * seed
    ptv = r <= radius
    # conformal dose: flat inside the target, sigmoid fall-off (~6 mm), a low-dose bath
    reference = rx * (0.98 / (1.0 + np.exp((r - radius - 6.0) / 2.5)) + 0.07 * np.exp(-r / 60.0))
    reference = np.where(body, reference, 0.0).astype(np.float32)
    water = reference * np.where(bone, 1.10, 1.0)  # no bone attenuation: too hot behind and in bone
    water = (0.965 * shift(water, (0, 0, 0.6), order=1, mode="nearest")).astype(np.float32)
    student = shift(reference, (0, 0.3, 0), order=1, mode="nearest") * 1.004 + rng.normal(0.0, 0.008 * rx, shape) * body
    teacher = shift(reference, (0, 0.15, 0), order=1, mode="nearest") + rng.normal(0.0, 0.005 * rx, shape) * body
    student_only = shift(reference, (0, 0.45, 0), order=1, mode="nearest") * 1.01 + rng.normal(0.0, 0.012 * rx, shape) * body
    rectum = ((y - centre[1] - radius - 8.0) ** 2 + (x - centre[2]) ** 2 <= 8.0**2) & (np.abs(z) <= 24)
    bladder = np.sqrt((z - centre[0] - 8) ** 2 + (y - centre[1] + radius + 12.0) ** 2 + (x - centre[2]) ** 2) <= 14.0
    return {
        "ct": ct, "dose_water": np.clip(water, 0, None).astype(np.float32), "reference": reference,
        "student": np.clip(student, 0, None).astype(np.float32),
        "teacher": np.clip(teacher, 0, None).astype(np.float32),
        "student_only": np.clip(student_only, 0, None).astype(np.float32),
        "spacing_mm": np.asarray(spacing, np.float64), "origin_mm": np.asarray([-100.0, -72.0, -80.0]),
        "prescription_gy": np.float64(rx), "mask_PTV": ptv, "mask_Rectum": rectum & body, "mask_Bladder": bladder & body,
    }


def write_run(run_dir: Path, cases: int = 2, footprint: dict | None = None) -> tuple[Path, Path]:
    """A run folder with ``predictions/case_XX.npz`` and ``evaluation.json``; returns both paths."""
    from workbench_vmat.compute.evaluation import evaluate_case, summarise

    run_dir = Path(run_dir)
    pred_dir = run_dir / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    per_subject: dict[str, dict] = {"input": {}, "teacher": {}, "student": {}, "student_only": {}}
    for i in range(cases):
        case = synthetic_case(seed=i)
        cid = f"case_{i:02d}"
        np.savez_compressed(pred_dir / f"{cid}.npz", **case)
        structures = {k[5:]: v for k, v in case.items() if k.startswith("mask_")}
        for subject, key in (("input", "dose_water"), ("teacher", "teacher"), ("student", "student"),
                             ("student_only", "student_only")):
            per_subject[subject][cid] = evaluate_case(case["reference"], case[key], case["spacing_mm"],
                                                      structures=structures, prescription_gy=RX)
    footprint = footprint if footprint is not None else {
        "teacher": {"parameters": 12_400_000, "storage_bytes": 49_700_000, "latency_cpu_ms": 936.0,
                    "latency_cuda_ms": 16.0, "activation_peak_bytes": 812_000_000},
        "student": {"parameters": 1_100_000, "storage_bytes": 4_400_000, "latency_cpu_ms": 374.0,
                    "latency_cuda_ms": 11.0, "activation_peak_bytes": 240_000_000},
    }
    evaluation = {"kind": "vmat-evaluation",
                  "subjects": {s: {"per_case": pc, "summary": summarise(pc)} for s, pc in per_subject.items()},
                  "footprint": footprint}
    path = run_dir / "evaluation.json"
    path.write_text(json.dumps(evaluation, indent=1))
    return path, pred_dir
