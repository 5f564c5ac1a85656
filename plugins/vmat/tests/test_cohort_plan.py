"""VMAT plan geometry and the Monte Carlo arc source (no transport: fast)."""
from __future__ import annotations

import numpy as np
import pytest

from workbench_vmat.compute.dose_reference import (
    REFERENCE_MACHINE,
    ArcSource,
    dose_to_medium,
    electron_density,
    fill_from_neighbours,
    segments,
)
from workbench_vmat.compute.phantom import HU_MAX, make_phantom
from workbench_vmat.compute.plan import SAD_MM, VMATPlan, beam_axes, conformal_plan, leaf_edges, project_points


@pytest.fixture(scope="module")
def case():
    p = make_phantom(0, 1, 8.0)
    plan = conformal_plan(p.masks["PTV"], p.spacing_mm, p.origin_mm, p.isocenter_mm, n_arcs=2, cp_spacing_deg=10.0,
                          seed=1)
    return p, plan


def test_beam_axes_follow_iec_head_first_supine():
    b, u, v = beam_axes(np.array([0.0, 90.0, 180.0, 270.0]))
    np.testing.assert_allclose(b[0], [0, 1, 0], atol=1e-12)  # gantry 0: from anterior, towards posterior (+y)
    np.testing.assert_allclose(b[1], [-1, 0, 0], atol=1e-12)  # gantry 90: from the patient's left (+x)
    for k in range(4):
        assert abs(b[k] @ u[k]) < 1e-12 and abs(b[k] @ v[k]) < 1e-12 and abs(u[k] @ v[k]) < 1e-12
    iso = np.zeros(3)
    uu, vv = project_points(np.array([[10.0, 0.0, 5.0]]), iso, 0.0)
    assert uu[0] == pytest.approx(10.0) and vv[0] == pytest.approx(5.0)
    # divergence: a point nearer the source projects smaller
    uu, _ = project_points(np.array([[10.0, -100.0, 0.0]]), iso, 0.0)
    assert uu[0] == pytest.approx(10.0 * SAD_MM / (SAD_MM - 100.0))


def test_leaf_bank_is_millennium_like():
    e = leaf_edges()
    assert len(e) == 61 and e[0] == -200 and e[-1] == 200 and (np.diff(e)[10:50] == 5).all()


def test_apertures_cover_the_target_projection(case):
    p, plan = case
    assert plan.n_control_points == 72 and set(plan.arc_index) == {0, 1}
    assert (plan.mu > 0).all() and plan.total_mu == pytest.approx(600.0)
    assert (plan.leaves[..., 1] >= plan.leaves[..., 0]).all()
    assert (plan.open_area_mm2() > 0).all()
    kz, ky, kx = np.nonzero(p.masks["CTV"])
    x0, y0, z0 = p.origin_mm
    pts = np.stack([x0 + 8.0 * kx, y0 + 8.0 * ky, z0 + 8.0 * kz], -1).astype(float)
    e = plan.leaf_edges()
    iso = np.asarray(plan.isocenter_mm)
    for k in range(0, plan.n_control_points, 7):
        u, v = project_points(pts, iso, float(plan.gantry_deg[k]))
        row = np.clip(np.searchsorted(e, v, side="right") - 1, 0, len(e) - 2)
        lo, hi = plan.leaves[k, row, 0], plan.leaves[k, row, 1]
        assert ((u >= lo - 1e-6) & (u <= hi + 1e-6)).mean() > 0.99  # CTV inside every aperture
        assert (plan.jaws_v[k, 0] <= v.min()) and (v.max() <= plan.jaws_v[k, 1])
    # conformal: the aperture is not much larger than the PTV's projection
    assert plan.open_area_mm2().mean() < 1.8 * (np.pi * 45 ** 2)


def test_plan_round_trips_through_json(case):
    _, plan = case
    back = VMATPlan.from_json(plan.to_json())
    np.testing.assert_allclose(back.leaves, plan.leaves, atol=1e-3)
    np.testing.assert_allclose(back.mu, plan.mu)
    assert back.isocenter_mm == plan.isocenter_mm and back.arcs == [tuple(a) for a in plan.arcs]
    assert back.scaled(2.0).total_mu == pytest.approx(2 * plan.total_mu)


def test_segments_weigh_mu_times_area_with_transmission(case):
    _, plan = case
    seg = segments(plan)
    w_open = plan.mu * plan.open_area_mm2()
    opened = seg["u1"] - seg["u0"]
    assert (opened > 0).all() and (seg["weight"] > 0).all()
    total_open = sum(seg["weight"][(seg["cp"] == k)].sum() for k in range(plan.n_control_points))
    # open parts (DLG-widened) dominate; transmission adds ~1.5 % of the closed area
    assert total_open > w_open.sum()
    assert total_open < 1.2 * w_open.sum()


def test_arc_source_samples_through_the_apertures(case):
    _, plan = case
    src = ArcSource(plan)
    assert src.max_energy <= 6.5
    batch = src.sample_batch(seed=7, history_offset=0, n=20000)
    d = np.stack([batch["ux"], batch["uy"], batch["uz"]], -1).astype(float)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    start = np.stack([batch["x"], batch["y"], batch["z"]], -1).astype(float) * 10.0  # cm -> mm
    iso = np.asarray(plan.isocenter_mm)
    assert np.allclose(np.linalg.norm(start - iso, axis=1), SAD_MM, atol=REFERENCE_MACHINE.extra_focal_distance_mm + 1)
    # each photon passes within a few cm of the isocentre (through the aperture)
    t = ((iso - start) * d).sum(1)
    miss = np.linalg.norm(start + t[:, None] * d - iso, axis=1)
    assert np.percentile(miss, 99) < 80.0
    assert 0.5 < batch["energy"].mean() < 3.0  # a 6 MV spectrum's mean photon energy is ~1.5-2 MeV
    # chunk invariance: history h draws the same primaries whatever the batching
    again = src.sample_batch(seed=7, history_offset=15000, n=5000)
    np.testing.assert_array_equal(again["ux"], batch["ux"][15000:])


def test_dose_to_medium_and_electron_density():
    hu = np.array([0, 40, -95, 1350, HU_MAX, -1000], np.int16)
    ones = np.ones(hu.shape, np.float32)
    dm = dose_to_medium(ones, hu)
    assert dm[0] == pytest.approx(1 / 1.011, rel=1e-3)  # soft tissue
    assert dm[2] > dm[1]  # fat: higher stopping power per gram than water
    assert dm[3] == pytest.approx(1 / 1.114, rel=0.02)  # cortical bone ~ -10 %
    assert dm[4] < 0.8  # titanium
    rho_e = electron_density(hu)
    assert rho_e[0] == pytest.approx(0.99, rel=0.01) and rho_e[4] == pytest.approx(4.43 * 0.828, rel=0.01)
    assert rho_e[5] < 0.002


def test_fill_from_neighbours_replaces_only_holes():
    d = np.ones((6, 6, 6), np.float32)
    holes = np.zeros(d.shape, bool)
    holes[2:4, 2:4, 2:4] = True
    d[holes] = 50.0
    out = fill_from_neighbours(d, holes)
    assert np.allclose(out, 1.0)
