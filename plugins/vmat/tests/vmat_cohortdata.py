"""A tiny synthetic cohort written as DICOM, for the training tests (seconds, no dose engines).

Each case: a water ellipse with a bone block and an air pocket that move per case; the
reference dose is `vmat_testdata.vmat_dose` (Gy); the "dose in water" input differs from it
the way heterogeneity does -- colder downstream of the air pocket's absence, hotter where
bone was ignored -- through a smooth multiplicative field of the CT, so a network can learn
reference from (CT, input).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from vmat_testdata import axes_for, vmat_dose


def synthetic_case(shape=(16, 20, 20), spacing=(4.0, 4.0, 4.0), seed=0):
    """(ct_hu, input_gy, reference_gy, masks) of one case."""
    rng = np.random.default_rng(seed)
    ax = axes_for(shape, spacing)
    zz, yy, xx = np.meshgrid(*ax, indexing="ij")
    ext = [a[-1] - a[0] for a in ax]
    body = (yy / (0.48 * ext[1])) ** 2 + (xx / (0.48 * ext[2])) ** 2 <= 1
    ct = np.where(body, 20.0, -1000.0)
    by, bx = rng.uniform(-0.25, 0.25, 2) * np.array(ext[1:])
    bone = body & (np.abs(yy - by) < 0.12 * ext[1]) & (np.abs(xx - bx) < 0.1 * ext[2])
    ct[bone] = 800.0
    gy, gx = rng.uniform(-0.2, 0.2, 2) * np.array(ext[1:])
    gas = body & (((yy - gy) ** 2 + (xx - gx) ** 2) < (0.09 * ext[1]) ** 2)
    ct[gas] = -900.0
    reference = vmat_dose(ax, extent=ext) / 30.0  # ~2 Gy prescription scale
    reference = reference * body
    # the water engine ignores density: hotter behind bone, colder behind gas (smooth fields)
    field = 1.0 + 0.08 * ndimage.gaussian_filter(bone.astype(float), 1.5) - 0.1 * ndimage.gaussian_filter(
        gas.astype(float), 1.5)
    dose_in = np.clip(reference * field + 0.02 * rng.standard_normal(shape) * reference.max() * 0.1, 0, None)
    ptv = reference >= 0.85 * reference.max()
    masks = {"BODY": body, "PTV": ptv, "Rectum": gas | (np.abs(yy - gy) < 2) & ptv}
    return ct.astype(np.float32), dose_in.astype(np.float32), reference.astype(np.float32), masks


def write_tiny_cohort(root: Path, n_cases: int = 5, shape=(16, 20, 20), spacing=(4.0, 4.0, 4.0),
                      splits=("train", "train", "train", "val", "test"), prescription_gy: float = 2.0) -> Path:
    """Write the cohort (CT series, two RTDOSE, RTSTRUCT per case, cohort.toml); returns ``root``."""
    from workbench_vmat.compute import dicom_io as io
    from workbench_vmat.compute.cohort import write_manifest

    root = Path(root)
    rows = []
    for i in range(n_cases):
        cid = f"case_{i:03d}"
        ct_hu, dose_in, ref, masks = synthetic_case(shape, spacing, seed=i)
        d = root / cid
        origin = tuple(-(n - 1) / 2 * s for n, s in zip(shape, spacing))
        ct = io.Volume(ct_hu, origin=origin, spacing=spacing,
                       meta={"patient_name": f"Tiny^{cid}", "patient_id": f"T-{cid}"})
        io.write_ct_series(d / "ct", ct)
        io.write_rtdose(d / "rtdose_input.dcm", ct.with_array(dose_in), reference=ct)
        io.write_rtdose(d / "rtdose_reference.dcm", ct.with_array(ref), reference=ct)
        io.write_rtstruct(d / "rtstruct.dcm", ct, masks)
        rows.append({"id": cid, "split": splits[i % len(splits)], "ct": f"{cid}/ct",
                     "input_dose": f"{cid}/rtdose_input.dcm", "reference_dose": f"{cid}/rtdose_reference.dcm",
                     "rtstruct": f"{cid}/rtstruct.dcm"})
    write_manifest(root, rows, {"name": "tiny", "prescription_gy": prescription_gy})
    return root
