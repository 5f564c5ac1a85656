"""The two dose engines: calibration to the same reference condition, geometry agreement,
and the physics that separates input from reference. Slow (pydosert import, Monte Carlo).

The Monte Carlo tests build pyRadMC's Goudsmit-Saunderson tables on first use (minutes);
set WORKBENCH_TEST_PYRADMC_HOME to a folder to keep them between runs.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from workbench_vmat.compute.dose_input import REFERENCE_GY_PER_MU, reference_region
from workbench_vmat.compute.phantom import make_phantom
from workbench_vmat.compute.plan import LEAF_WIDTHS_MM, VMATPlan, conformal_plan, leaf_edges

pytestmark = pytest.mark.slow

SP = 8.0


def _water_box(spacing=SP):
    """A water box in patient coordinates, isocentre at the origin, 10 cm under the anterior surface."""
    shape = (int(round(160 / spacing)) | 1, int(round(300 / spacing)) | 1, int(round(240 / spacing)) | 1)
    iso_idx = tuple((n - 1) / 2 for n in shape)
    origin = (-iso_idx[2] * spacing, -iso_idx[1] * spacing, -iso_idx[0] * spacing)
    y = origin[1] + spacing * np.arange(shape[1])
    body = np.zeros(shape, bool)
    body[:, y >= -100.0 - 0.5 * spacing, :] = True
    hu = np.where(body, 0, -1000).astype(np.int16)
    return hu, body, (spacing,) * 3, origin, iso_idx


def _field(gantry: float, u_range=(-50.0, 50.0), v_range=(-50.0, 50.0)) -> VMATPlan:
    e = leaf_edges()
    leaves = np.zeros((1, len(LEAF_WIDTHS_MM), 2))
    rows = (e[:-1] >= v_range[0]) & (e[1:] <= v_range[1])
    leaves[0, rows] = u_range
    return VMATPlan(gantry_deg=np.array([gantry]), gantry_span_deg=0.0, arc_index=np.zeros(1, int), mu=np.ones(1),
                    leaves=leaves, jaws_v=np.array([v_range]), jaws_u=np.array([[u_range[0] - 5, u_range[1] + 5]]),
                    isocenter_mm=(0.0, 0.0, 0.0))


def _centroid(dose, origin, spacing, thr=0.5):
    m = dose >= thr * dose.max()
    kz, ky, kx = np.nonzero(m)
    w = dose[m]
    return np.array([origin[0] + spacing * (kx * w).sum() / w.sum(), origin[1] + spacing * (ky * w).sum() / w.sum(),
                     origin[2] + spacing * (kz * w).sum() / w.sum()])


def test_input_engine_gives_1cgy_per_mu_at_the_reference_condition():
    from workbench_vmat.compute.dose_input import compute_input_dose

    hu, body, sp, origin, iso_idx = _water_box()
    d = compute_input_dose(body, sp, origin, _field(0.0))
    assert d[reference_region(d.shape, sp, iso_idx)].mean() == pytest.approx(REFERENCE_GY_PER_MU, rel=0.01)
    assert (d[~body] == 0).all()


def test_input_dose_is_conformal():
    from workbench_vmat.compute.dose_input import compute_input_dose

    p = make_phantom(0, 1, SP)
    plan = conformal_plan(p.masks["PTV"], p.spacing_mm, p.origin_mm, p.isocenter_mm, n_arcs=1, cp_spacing_deg=20)
    d = compute_input_dose(p.masks["BODY"], p.spacing_mm, p.origin_mm, plan)
    ptv, body = p.masks["PTV"], p.masks["BODY"]
    rx = np.median(d[p.masks["CTV"]])
    assert np.percentile(d[ptv], 5) > 0.85 * rx
    assert d[p.masks["Rectum"]].mean() < 0.8 * rx and d[p.masks["FemoralHead_L"]].mean() < 0.6 * rx
    assert (d[~body] == 0).all() and (d >= 0).all()
    z = p.origin_mm[2] + SP * np.arange(d.shape[0])
    far = body & (np.abs(z - p.isocenter_mm[2]) > 55)[:, None, None]
    assert far.any() and d[far].max() < 0.3 * rx


def test_pencil_reference_same_calibration_and_dose_to_medium():
    from workbench_vmat.compute.dose_input import compute_input_dose
    from workbench_vmat.compute.dose_reference import compute_pencil_reference

    hu, body, sp, origin, iso_idx = _water_box()
    d = compute_pencil_reference(hu, body, sp, origin, _field(0.0), refine=1)
    # dose to medium of soft tissue-like water: 1 / 1.011 of the calibrated dose to water... HU 0 is soft tissue
    assert d[reference_region(d.shape, sp, iso_idx)].mean() == pytest.approx(REFERENCE_GY_PER_MU / 1.011, rel=0.015)
    # a bone slab in the beam: less dose to medium inside it than the water engine gives
    hu2 = hu.copy()
    y = origin[1] + SP * np.arange(hu.shape[1])
    slab = (y > -60) & (y < -30)
    hu2[:, slab, :] = np.where(body[:, slab, :], 1300, -1000)
    d_bone = compute_pencil_reference(hu2, body, sp, origin, _field(0.0), refine=1)
    d_water = compute_input_dose(body, sp, origin, _field(0.0))
    core = reference_region(d.shape, sp, iso_idx)
    in_slab = (core[0], np.nonzero(slab)[0][1:-1], core[2])
    assert d_bone[in_slab[0], in_slab[1], in_slab[2]].mean() < 0.93 * d_water[in_slab[0], in_slab[1], in_slab[2]].mean()


@pytest.fixture(scope="module")
def mc_home(tmp_path_factory):
    return os.environ.get("WORKBENCH_TEST_PYRADMC_HOME") or str(tmp_path_factory.mktemp("pyradmc-home"))


def test_monte_carlo_calibration_and_geometry_match_the_input_engine(mc_home, tmp_path):
    """An off-axis half field at gantry 90: both engines put the dose in the same place,
    and the Monte Carlo gives 1 cGy/MU at the reference condition."""
    from workbench_vmat.compute.dose_input import compute_input_dose
    from workbench_vmat.compute.dose_reference import start_monte_carlo

    hu, body, sp, origin, iso_idx = _water_box()
    job = start_monte_carlo(hu, body, sp, origin, _field(0.0), histories=2_000_000, seed=1, device="cpu",
                            home=mc_home, workdir=tmp_path / "mc0", calibration_file=os.path.join(mc_home, "cal.json"))
    res = job.result(timeout=1800)
    region = reference_region(hu.shape, sp, iso_idx)
    assert res["dose"][region].mean() == pytest.approx(REFERENCE_GY_PER_MU / 1.011, rel=0.03)
    # geometry: gantry 90 (from the patient's left), aperture open on +u only, rows on +v only
    box = np.where(np.ones_like(body), 0, 0).astype(np.int16)
    full = np.ones_like(body)
    plan = _field(90.0, u_range=(0.0, 40.0), v_range=(0.0, 40.0))
    d_in = compute_input_dose(full, sp, origin, plan)
    job = start_monte_carlo(box, full, sp, origin, plan, histories=1_000_000, seed=2, device="cpu", home=mc_home,
                            workdir=tmp_path / "mc1", calibration_file=os.path.join(mc_home, "cal.json"))
    d_mc = job.result(timeout=1800)["dose"]
    c_in, c_mc = _centroid(d_in, origin, SP), _centroid(d_mc, origin, SP)
    assert c_in[1] > 10 and c_in[2] > 10  # +u at gantry 90 is posterior (+y), +v superior (+z)
    np.testing.assert_allclose(c_mc[1:], c_in[1:], atol=4.0)
