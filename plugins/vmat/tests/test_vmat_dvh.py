"""DVH: an analytic sphere, supersampling, dicompyler-core's DVH as the field's reference."""
from __future__ import annotations

import numpy as np
import pytest

from workbench_vmat.compute.dvh import cumulative_dvh, dose_at_volume, dvh_metrics, mean_dose, volume_at_dose


def _sphere(radius_mm: float, spacing: float, n: int, d0: float = 70.0, g: float = 1.0):
    """Dose d0 - g r (Gy, r in mm) and the mask r <= radius on an n^3 grid centred on a voxel."""
    c = (np.arange(n) - n // 2) * spacing
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    r = np.sqrt(z**2 + y**2 + x**2)
    return d0 - g * r, r <= radius_mm


def _analytic_d(pct: float, radius: float, d0: float = 70.0, g: float = 1.0) -> float:
    # inside a sphere, the fraction of volume with r <= rho is (rho / R)^3; dose falls with r
    return d0 - g * radius * (pct / 100.0) ** (1.0 / 3.0)


def test_sphere_matches_the_analytic_dvh():
    dose, mask = _sphere(radius_mm=15.0, spacing=1.0, n=35)
    h = cumulative_dvh(dose, mask, (1.0, 1.0, 1.0), name="PTV")
    assert h.volume_cc == pytest.approx(4 / 3 * np.pi * 15.0**3 / 1000, rel=0.01)
    for pct in (2.0, 50.0, 95.0, 98.0):
        assert dose_at_volume(h, pct) == pytest.approx(_analytic_d(pct, 15.0), abs=0.12), pct
    assert h.mean_gy == pytest.approx(70.0 - 0.75 * 15.0, abs=0.05)  # mean r in a ball is 3R/4
    assert mean_dose(dose, mask) == pytest.approx(h.mean_gy)
    # V(d) is the inverse of D(v)
    d50 = dose_at_volume(h, 50.0)
    assert volume_at_dose(h, d50) == pytest.approx(50.0, abs=0.5)
    assert volume_at_dose(h, h.min_gy) == 100.0 and volume_at_dose(h, h.max_gy + 1) == 0.0
    m = dvh_metrics(dose, mask, 1.0)
    assert m["D2"] > m["Dmean"] > m["D95"]


def test_supersampling_follows_a_coarse_sphere_more_closely():
    radius = 9.0  # only 3 voxels of 3 mm: whole voxels overstate the volume
    dose, mask = _sphere(radius_mm=radius, spacing=3.0, n=9, g=2.0)
    exact_cc = 4 / 3 * np.pi * radius**3 / 1000
    plain = cumulative_dvh(dose, mask, 3.0)
    fine = cumulative_dvh(dose, mask, 3.0, supersample=4)
    assert abs(fine.volume_cc - exact_cc) < 0.5 * abs(plain.volume_cc - exact_cc)


def test_supersampling_resolves_the_dose_gradient_inside_voxels():
    # a dose rising 3 Gy per 3 mm voxel along x over a slab 4 voxels thick: over its volume
    # (x from -1.5 to 10.5 mm) the dose is uniform in [60, 72) Gy, so D_v = 72 - 12 v / 100
    x = np.arange(6) * 3.0 - 3.0
    dose = np.broadcast_to(60.0 + (x + 1.5), (4, 4, 6)).copy()
    mask = np.zeros(dose.shape, bool)
    mask[:, :, 1:5] = True  # a slab across the grid: its only edges are along x
    plain = cumulative_dvh(dose, mask, 3.0)
    fine = cumulative_dvh(dose, mask, 3.0, supersample=8)
    assert fine.volume_cc == pytest.approx(plain.volume_cc)  # a slab of whole voxels keeps its volume
    for pct in (2.0, 50.0, 98.0):
        exact = 72.0 - 12.0 * pct / 100.0
        assert dose_at_volume(fine, pct) == pytest.approx(exact, abs=0.1), pct
    # voxel centres alone see 61.5 .. 70.5 Gy: D2 and D98 are off by about half a voxel's dose
    assert dose_at_volume(plain, 2.0) == pytest.approx(70.5)
    assert dose_at_volume(plain, 98.0) == pytest.approx(61.5)
    assert fine.mean_gy == pytest.approx(66.0, abs=1e-6) and plain.mean_gy == pytest.approx(66.0)


def test_agrees_with_dicompyler_core():
    dvh_ref = pytest.importorskip("dicompylercore.dvh")
    rng = np.random.default_rng(3)
    dose = np.round(rng.gamma(20.0, 3.0, size=(16, 20, 24)), 4)
    mask = rng.random(dose.shape) < 0.4
    dose[mask.nonzero()[0][0], mask.nonzero()[1][0], mask.nonzero()[2][0]] = 120.0  # an exact bin edge as maximum
    h = cumulative_dvh(dose, mask, (2.0, 2.0, 2.0))
    binsize = 0.01
    # dicompyler-core bins in cGy with 1 cGy bins (its from_data assumes integer bin sizes)
    # from_data returns the differential histogram labelled "cumulative": relabel it
    diff = dvh_ref.DVH.from_data(dose[mask] * 100.0, binsize=1)
    ref = dvh_ref.DVH(diff.counts, diff.bins, dvh_type="differential").cumulative
    for pct in (2, 50, 95):
        # dicompyler reads D_x at a bin's lower edge (no interpolation)
        assert dose_at_volume(h, pct) == pytest.approx(ref.statistic(f"D{pct}").value / 100, abs=2 * binsize), pct
    assert h.mean_gy == pytest.approx(ref.mean / 100, abs=binsize)
    cum = ref.relative_volume
    for d in (30.0, 60.0, 90.0):
        assert volume_at_dose(h, d) == pytest.approx(cum.counts[int(round(d / binsize))], abs=0.05), d


def test_small_cases_and_errors():
    dose = np.array([[[1.0, 3.0]]])
    h = cumulative_dvh(dose, np.array([[[True, True]]]))
    assert dose_at_volume(h, 50) == pytest.approx(2.0)
    assert dose_at_volume(h, 100) == 1.0 and dose_at_volume(h, 1) == 3.0
    with pytest.raises(ValueError, match="empty"):
        cumulative_dvh(dose, np.zeros_like(dose, bool))
    with pytest.raises(ValueError, match="boolean"):
        cumulative_dvh(dose, np.ones_like(dose))
    with pytest.raises(ValueError, match="shape"):
        cumulative_dvh(dose, np.ones((1, 1, 3), bool))
    with pytest.raises(ValueError, match="NaN"):
        cumulative_dvh(np.array([[[np.nan, 1.0]]]), np.ones((1, 1, 2), bool))
    with pytest.raises(ValueError, match="volume percentage"):
        dose_at_volume(h, 0)
