"""A tiny analytic cohort written as DICOM (seconds, no dose engines): ``cohort_dir = "builtin:tiny"``.

For smoke runs and tests of the training pipelines, not for judging a model. Each case: a
water ellipse with a bone block and a gas pocket placed per case; the reference dose is a
smooth VMAT-like distribution (a high-dose ellipsoid with an erf penumbra over a decaying
bath); the "dose in water" input differs from it as heterogeneity would -- hotter where
bone was ignored, colder around the gas -- through smooth multiplicative fields of the CT,
so (CT, input) -> reference is learnable.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import erf

BUILTIN = "builtin:tiny"
VERSION = 1


def tiny_case(shape=(16, 20, 20), spacing=(4.0, 4.0, 4.0), seed=0):
    """(ct_hu, input_gy, reference_gy, masks) of one case (prescription 2 Gy)."""
    rng = np.random.default_rng([seed, VERSION])
    ax = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    zz, yy, xx = np.meshgrid(*ax, indexing="ij")
    ext = np.array([n * s for n, s in zip(shape, spacing)], float)
    body = (yy / (0.46 * ext[1])) ** 2 + (xx / (0.46 * ext[2])) ** 2 <= 1
    ct = np.where(body, 20.0, -1000.0)
    by, bx = rng.uniform(-0.2, 0.2, 2) * ext[1:]
    bone = body & (np.abs(yy - by) < 0.12 * ext[1]) & (np.abs(xx - bx) < 0.1 * ext[2])
    ct[bone] = 800.0
    gy, gx = rng.uniform(-0.2, 0.2, 2) * ext[1:]
    gas = body & (((yy - gy) ** 2 + (xx - gx) ** 2) < (0.1 * ext[1]) ** 2)
    ct[gas] = -900.0
    semi = np.maximum(0.25 * ext, 6.0)
    r = np.sqrt((zz / semi[0]) ** 2 + (yy / semi[1]) ** 2 + (xx / semi[2]) ** 2)
    high = 0.5 * (1 - erf((r - 1) / (3.0 / semi.mean())))
    bath = 0.45 * np.exp(-1.6 * np.sqrt((yy / (0.35 * ext[1])) ** 2 + (xx / (0.35 * ext[2])) ** 2))
    reference = 2.0 / 0.7 * (0.7 * high + bath) * body
    field = 1.0 + 0.12 * ndimage.gaussian_filter(bone.astype(float), 2.0) \
        - 0.15 * ndimage.gaussian_filter(gas.astype(float), 2.0)
    dose_in = np.clip(reference * field, 0, None)
    masks = {"BODY": body, "PTV": reference >= 0.9 * np.percentile(reference[body], 99), "Rectum": gas}
    return ct.astype(np.float32), dose_in.astype(np.float32), reference.astype(np.float32), masks


def write_tiny_cohort(root: str | Path, n_cases: int = 5, shape=(16, 20, 20), spacing=(4.0, 4.0, 4.0),
                      splits=("train", "train", "train", "val", "test"), prescription_gy: float = 2.0) -> Path:
    """Write CT series, two RTDOSE and an RTSTRUCT per case and ``cohort.toml``; returns ``root``."""
    from . import dicom_io as io
    from .cohort import write_manifest

    root = Path(root)
    rows = []
    for i in range(n_cases):
        cid = f"case_{i:03d}"
        ct_hu, dose_in, ref, masks = tiny_case(shape, spacing, seed=i)
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
    write_manifest(root, rows, {"name": "tiny", "prescription_gy": prescription_gy, "generator": f"tiny/{VERSION}"})
    return root
