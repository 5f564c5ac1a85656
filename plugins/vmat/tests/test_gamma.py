"""Gamma analysis: analytic cases, geometry, options, and agreement with pymedphys."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator
from scipy.optimize import minimize

import vmat_testdata as T
from workbench_vmat.compute.gamma import GammaResult, gamma, pass_rate


def analytic_ramp_gamma(slope, shift, dd_abs, dta):
    """Continuous gamma between a linear dose and the same dose shifted by ``shift``."""
    return abs(slope * shift) / np.sqrt(dd_abs**2 + (dta * slope) ** 2)


# -- analytic cases ------------------------------------------------------------------------
def test_identical_doses_give_zero_gamma_and_full_pass():
    ax, ref, _, _ = T.pair((12, 14, 16), (2.5, 2.5, 2.5), "identical")
    r = gamma(ref, ref, axes_reference=ax, device="cpu")
    assert isinstance(r, GammaResult)
    evaluated = ref >= 0.1 * ref.max()
    assert r.n_evaluated == int(evaluated.sum())
    assert np.all(np.isnan(r.gamma_map[~evaluated]))
    assert np.nanmax(r.gamma_map) <= 0.003
    assert r.pass_rate == 100.0


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_shifted_linear_dose_matches_the_analytic_gamma(ndim):
    # dose rising along the last axis; evaluation shifted by 0.7 mm along it
    spacing = (2.0, 2.5, 3.0)[-ndim:]
    shape = (9, 10, 12)[-ndim:]
    ax = T.axes_for(shape, spacing)
    slope, shift = 1.5, 0.7  # Gy/mm, mm
    grids = np.meshgrid(*ax, indexing="ij")
    ref = 50.0 + slope * grids[-1]
    ev = 50.0 + slope * (grids[-1] - shift)
    r = gamma(ref, ev, axes_reference=ax, cutoff=0, device="cpu")
    expected = analytic_ramp_gamma(slope, shift, 0.02 * ref.max(), 2.0)
    # away from the edges (where the search is cut by the grid) the value is exact
    inner = tuple(slice(2, -2) for _ in range(ndim))
    np.testing.assert_allclose(r.gamma_map[inner], expected, atol=2e-3)


def test_uniform_offset_on_flat_dose_gives_ratio_of_difference_to_criterion():
    ref = np.full((8, 9, 10), 40.0)
    for diff, expected in ((0.4, 0.5), (1.2, 1.5)):  # dd = 2% of 40 Gy = 0.8 Gy
        r = gamma(ref, ref + diff, 2.0, device="cpu")
        np.testing.assert_allclose(r.gamma_map, expected, atol=1e-3)
    assert gamma(ref, ref + 0.4, 2.0, device="cpu").pass_rate == 100.0
    assert gamma(ref, ref + 1.2, 2.0, device="cpu").pass_rate == 0.0


def test_gamma_is_capped_at_max_gamma():
    ref = np.full((6, 7, 8), 40.0)
    r = gamma(ref, ref * 1.5, 2.0, max_gamma=3.0, device="cpu")  # 20 Gy off: gamma 25
    assert np.all(r.gamma_map == np.float32(3.0))
    assert r.n_evaluated == ref.size and r.pass_rate == 0.0


# -- options -------------------------------------------------------------------------------
def test_cutoff_excludes_low_reference_points():
    ax, ref, _, ev = T.pair((10, 12, 12), (2.5, 2.5, 2.5), "mixed")
    for cutoff in (10, 40):
        r = gamma(ref, ev, axes_reference=ax, cutoff=cutoff, device="cpu")
        below = ref < cutoff / 100 * ref.max()
        assert np.all(np.isnan(r.gamma_map[below]))
        assert not np.any(np.isnan(r.gamma_map[~below]))
        assert r.n_evaluated == int((~below).sum())
        assert r.cutoff_dose == pytest.approx(cutoff / 100 * ref.max())


def test_prescription_scales_the_dose_criterion():
    ax, ref, _, ev = T.pair((10, 12, 12), (2.5, 2.5, 2.5), "scale")
    p = 0.5 * ref.max()
    with_rx = gamma(ref, ev, axes_reference=ax, dd=2, prescription=p, device="cpu")
    equivalent = gamma(ref, ev, axes_reference=ax, dd=1, device="cpu")  # 2% of max/2
    np.testing.assert_allclose(with_rx.gamma_map, equivalent.gamma_map, atol=1e-3, equal_nan=True)
    assert with_rx.normalisation_dose == pytest.approx(p)


def test_local_gamma_uses_the_dose_at_each_point():
    # a flat dose scaled by 3%: locally 1.5 everywhere; globally (2% of max) less where dose is low
    ref = np.concatenate([np.full((4, 6, 6), 20.0), np.full((4, 6, 6), 40.0)])
    ev = ref * 1.03
    loc = gamma(ref, ev, 2.0, local=True, cutoff=0, device="cpu")
    glob = gamma(ref, ev, 2.0, local=False, cutoff=0, device="cpu")
    # far from the step between the two levels the distance cannot help
    np.testing.assert_allclose(loc.gamma_map[0, :, :], 1.5, atol=2e-3)
    np.testing.assert_allclose(loc.gamma_map[-1, :, :], 1.5, atol=2e-3)
    np.testing.assert_allclose(glob.gamma_map[0, :, :], 0.6 / 0.8, atol=2e-3)
    assert loc.pass_rate < glob.pass_rate


def test_finer_criteria_never_pass_more():
    ax, ref, _, ev = T.pair((12, 14, 14), (2.5, 2.5, 2.5), "mixed")
    loose = gamma(ref, ev, axes_reference=ax, dd=3, dta=3, device="cpu")
    mid = gamma(ref, ev, axes_reference=ax, dd=2, dta=2, device="cpu")
    tight = gamma(ref, ev, axes_reference=ax, dd=1, dta=1, device="cpu")
    assert loose.pass_rate >= mid.pass_rate >= tight.pass_rate
    assert tight.pass_rate < 100.0
    assert np.all(loose.gamma_map <= mid.gamma_map + 1e-3) or np.isnan(loose.gamma_map).any()


def test_pass_rate_helper_and_summary():
    g = np.array([0.2, 1.0, 1.0001, np.nan, 3.0])
    assert pass_rate(g) == pytest.approx(50.0)
    assert np.isnan(pass_rate(np.array([np.nan])))
    ax, ref, _, ev = T.pair((8, 10, 10), (2.5, 2.5, 2.5), "shift")
    s = gamma(ref, ev, axes_reference=ax, device="cpu").summary()
    for key in ("pass_rate", "n_evaluated", "n_passed", "mean_gamma", "dd_percent", "dta_mm", "device", "seconds"):
        assert key in s
    assert s["n_passed"] <= s["n_evaluated"]


# -- geometry ------------------------------------------------------------------------------
def test_non_identical_grids_sample_the_same_linear_dose():
    # reference and evaluation on different origins and spacings; a linear dose is
    # interpolated exactly, so gamma is 0 wherever the evaluation grid covers the point,
    # and the analytic value for a shifted copy
    f = lambda z, y, x: 30.0 + 0.8 * z - 0.5 * y + 1.1 * x  # noqa: E731
    ax_r = [np.arange(8) * 3.0, np.arange(9) * 2.0, np.arange(10) * 2.5]
    ax_e = [np.arange(-1.3, 26.0, 2.0), np.arange(-0.7, 19.0, 1.7), np.arange(-2.1, 26.0, 3.1)]
    ref = f(*np.meshgrid(*ax_r, indexing="ij"))
    ev = f(*np.meshgrid(*ax_e, indexing="ij"))
    r = gamma(ref, ev, axes_reference=ax_r, axes_evaluation=ax_e, cutoff=0, device="cpu")
    assert np.nanmax(r.gamma_map) < 3e-3
    shift = 0.5  # mm along x
    ev2 = f(*np.meshgrid(ax_e[0], ax_e[1], ax_e[2] - shift, indexing="ij"))
    r2 = gamma(ref, ev2, axes_reference=ax_r, axes_evaluation=ax_e, cutoff=0, device="cpu")
    expected = abs(1.1 * shift) / np.sqrt((0.02 * ref.max()) ** 2 + (2.0 * np.linalg.norm([0.8, 0.5, 1.1])) ** 2)
    np.testing.assert_allclose(r2.gamma_map[2:-2, 2:-2, 2:-2], expected, atol=3e-3)


def test_decreasing_axes_give_the_same_result():
    ax, ref, _, ev = T.pair((10, 12, 12), (2.5, 2.0, 3.0), "mixed")
    base = gamma(ref, ev, axes_reference=ax, device="cpu")
    flipped_e = gamma(ref, ev[:, ::-1, :], axes_reference=ax, axes_evaluation=[ax[0], ax[1][::-1], ax[2]], device="cpu")
    np.testing.assert_allclose(flipped_e.gamma_map, base.gamma_map, atol=1e-4, equal_nan=True)
    flipped_r = gamma(ref[::-1], ev, axes_reference=[ax[0][::-1], ax[1], ax[2]], axes_evaluation=ax, device="cpu")
    np.testing.assert_allclose(flipped_r.gamma_map[::-1], base.gamma_map, atol=1e-4, equal_nan=True)


def test_evaluation_out_of_reach_is_not_evaluated():
    ax_r = [np.arange(6) * 2.0, np.arange(6) * 2.0, np.arange(6) * 2.0]
    ax_e = [a + 20.0 for a in ax_r]  # 20 mm away: beyond max_gamma * dta = 4 mm
    ref = np.full((6, 6, 6), 10.0)
    r = gamma(ref, ref, axes_reference=ax_r, axes_evaluation=ax_e, device="cpu")
    assert r.n_evaluated == 0 and np.isnan(r.pass_rate)
    # partly overlapping: only points within reach of the evaluation grid count
    ax_e2 = [ax_r[0] + 7.0, ax_r[1], ax_r[2]]
    r2 = gamma(ref, ref, axes_reference=ax_r, axes_evaluation=ax_e2, device="cpu")
    # reference planes z = 0 and 2 mm are 7 and 5 mm from the evaluation grid (z >= 7 mm)
    assert r2.n_evaluated == 4 * 36
    assert np.all(np.isnan(r2.gamma_map[:2])) and not np.any(np.isnan(r2.gamma_map[2:]))
    np.testing.assert_allclose(r2.gamma_map[2], 1.5, atol=1e-3)  # 3 mm to the nearest match
    assert r2.pass_rate == 75.0


def test_single_plane_3d_equals_2d():
    ax, ref, _, ev = T.pair((16, 18), (2.0, 2.5), "mixed")
    r2 = gamma(ref, ev, axes_reference=ax, device="cpu")
    r3 = gamma(ref[None], ev[None], axes_reference=[np.array([5.0])] + ax, device="cpu")
    np.testing.assert_allclose(r3.gamma_map[0], r2.gamma_map, atol=1e-5, equal_nan=True)


def test_bad_inputs_are_rejected():
    ref = np.ones((4, 5, 6))
    with pytest.raises(ValueError, match="NaN"):
        gamma(np.where(ref > 0, np.nan, 0), ref, 1.0)
    with pytest.raises(ValueError, match="shape"):
        gamma(ref, np.ones((4, 5, 7)), 1.0)
    with pytest.raises(ValueError, match="spacing"):
        gamma(ref, ref)
    with pytest.raises(ValueError, match="dta"):
        gamma(ref, ref, 1.0, dta=0)
    with pytest.raises(ValueError, match="monotonic"):
        gamma(ref, ref, axes_reference=[np.array([0, 1, 1, 2.0]), np.arange(5.0), np.arange(6.0)])
    with pytest.raises(ValueError, match="zero"):
        gamma(np.zeros((4, 4)), np.zeros((4, 4)), 1.0)


# -- accuracy against an independent brute-force search ------------------------------------------
@pytest.mark.parametrize("kind", ["shift_large", "noise", "mixed"])
def test_values_match_a_fine_brute_force_search(kind):
    ax, ref, _, ev = T.pair((30, 34), (2.0, 2.0), kind, seed=3)
    r = gamma(ref, ev, axes_reference=ax, device="cpu")
    interp = RegularGridInterpolator(ax, ev, bounds_error=False, fill_value=np.inf)
    dd_abs = 0.02 * ref.max()
    rng = np.random.default_rng(0)
    idx = np.argwhere(~np.isnan(r.gamma_map))
    s = np.arange(-4.0, 4.0 + 1e-9, 0.02)
    yy, xx = np.meshgrid(s, s, indexing="ij")
    offsets = np.stack([yy.ravel(), xx.ravel()], 1)
    offsets = offsets[(offsets**2).sum(1) <= 16.0]
    for i in idx[rng.choice(len(idx), 25, replace=False)]:
        i = tuple(i)
        p = np.array([ax[0][i[0]], ax[1][i[1]]])
        g2 = (offsets**2).sum(1) / 4.0 + (interp(p + offsets) - ref[i]) ** 2 / dd_abs**2
        brute = min(float(np.sqrt(g2.min())), 2.0)
        ours = float(r.gamma_map[i])
        # never worse than the fine lattice (beyond the tolerance), never implausibly lower
        assert ours <= brute + 0.101, (i, ours, brute)  # tolerance: 1 / interp_fraction
        assert ours >= brute - 0.03, (i, ours, brute)


@pytest.mark.parametrize("kind", ["noise", "mixed"])
def test_3d_values_match_a_fine_brute_force_search(kind):
    # 3-D noisy doses take every stage of the node search (certificates from the cube's
    # slopes, octant boxes, the three box bounds, splitting); a bound that is too high
    # would prune the true minimum and show here as a value above the fine lattice's
    ax, ref, _, ev = T.pair((14, 16, 18), (2.5, 2.5, 2.5), kind, seed=5)
    r = gamma(ref, ev, axes_reference=ax, device="cpu")
    interp = RegularGridInterpolator(ax, ev, bounds_error=False, fill_value=np.inf)
    dd_abs = 0.02 * ref.max()
    s = np.arange(-4.0, 4.0 + 1e-9, 0.125)
    grid = np.stack(np.meshgrid(s, s, s, indexing="ij"), -1).reshape(-1, 3)
    offsets = grid[(grid**2).sum(1) <= 16.0]
    idx = np.argwhere(~np.isnan(r.gamma_map))
    for i in idx[np.random.default_rng(1).choice(len(idx), 20, replace=False)]:
        i = tuple(i)
        p = np.array([a[k] for a, k in zip(ax, i)])

        def g2(off):
            off = np.atleast_2d(off)
            return (off**2).sum(1) / 4.0 + (interp(p + off) - ref[i]) ** 2 / dd_abs**2

        coarse = g2(offsets)
        # then a local search from the 5 best lattice points (noisy gradients are steep:
        # a lattice alone overshoots the minimum by more than the tolerance there)
        best = coarse.min()
        for start in offsets[np.argsort(coarse)[:5]]:
            res = minimize(lambda x: float(g2(x)[0]) if (x**2).sum() <= 16.0 else np.inf, start, method="Nelder-Mead",
                           options={"xatol": 1e-4, "fatol": 1e-7})
            best = min(best, float(res.fun))
        brute = min(float(np.sqrt(best)), 2.0)
        ours = float(r.gamma_map[i])
        assert ours <= brute + 0.101, (i, ours, brute)  # tolerance: 1 / interp_fraction
        assert ours >= brute - 0.01, (i, ours, brute)


@pytest.mark.parametrize("ndim", [2, 3])
def test_box_lower_bounds_never_exceed_the_minimum(ndim):
    # the three lower bounds that prune boxes (centred, slope, convex) must stay at or below
    # the least gamma^2 over the box, here sampled finely on random multilinear boxes
    from workbench_vmat.compute import gamma as G

    search = G._Search(np.zeros((3,) * ndim, np.float32), [np.arange(3.0)] * ndim, dta=2.0, max_gamma=2.0,
                       step=0.2, device=torch.device("cpu"))
    gen = torch.Generator().manual_seed(7)
    m = 400
    # boxes as the search holds them: one column per box
    lo = torch.rand(ndim, m, generator=gen) * 2.4 - 1.6
    h = torch.rand(ndim, m, generator=gen) * 1.2 + 0.05
    c = torch.randn(1 << ndim, m, generator=gen) * 0.8
    c[0] *= 1.5 / 0.8
    centred, _, _ = search._evaluate(lo, h, c)
    slope = search._slope_bound(lo, h, c)
    convex = search._convex_bound(lo, h, c)
    t = torch.linspace(-1, 1, 41 if ndim == 2 else 17)
    xi = torch.stack(torch.meshgrid(*[t] * ndim, indexing="ij")).reshape(ndim, -1)
    best = torch.full((m,), float("inf"))
    for j in range(xi.shape[1]):
        x = [xi[a, j].expand(m) for a in range(ndim)]
        y = [lo[a] + (x[a] + 1) * 0.5 * h[a] for a in range(ndim)]
        q = search._multilinear(c, x)
        best = torch.minimum(best, sum(ya * ya for ya in y) + q * q)
    for name, lb in (("centred", centred), ("slope", slope), ("convex", convex)):
        assert bool(torch.all(lb <= best + 1e-4)), (name, float((lb - best).max()))
    # and the convex bound is the tightest of the three on some boxes (it is not vacuous)
    assert bool(torch.any(convex > torch.maximum(centred, slope) + 1e-3))


# -- agreement with pymedphys ------------------------------------------------------------------
def _pymedphys_gamma(ax, ref, ax_e, ev, dd, dta, cutoff=10, local=False, interp_fraction=10):
    pymedphys = pytest.importorskip("pymedphys")
    try:
        g = pymedphys.gamma(
            tuple(ax), ref, tuple(ax_e), ev, dd, dta,
            lower_percent_dose_cutoff=cutoff, interp_fraction=interp_fraction, max_gamma=2, local_gamma=local,
        )
    except ModuleNotFoundError as exc:  # pymedphys's interpolation needs numba
        pytest.skip(f"pymedphys cannot run here: {exc}")
    return g


def _compare(ax, ref, ax_e, ev, *, dd, dta, tolerance_pp, local=False, interp_fraction=10):
    ours = gamma(ref, ev, axes_reference=ax, axes_evaluation=ax_e, dd=dd, dta=dta, local=local, device="cpu",
                 interp_fraction=interp_fraction)
    theirs = _pymedphys_gamma(ax, ref, ax_e, ev, dd, dta, local=local, interp_fraction=interp_fraction)
    valid = ~np.isnan(theirs)
    assert ours.n_evaluated == int(valid.sum())
    np.testing.assert_array_equal(np.isnan(ours.gamma_map), ~valid)
    theirs_rate = pass_rate(theirs)
    assert abs(ours.pass_rate - theirs_rate) <= tolerance_pp, (ours.pass_rate, theirs_rate)
    # pymedphys samples spheres of discrete radii, so it is at or above the true minimum
    # (by 0.1 and more in steep gradients), never below; ours is within its tolerance of
    # the true minimum: 0.002 near gamma = 1, up to 1 / interp_fraction away from it
    tolerance = np.clip(0.5 * np.abs(theirs[valid] - 1), 0.002, 1.0 / interp_fraction) + 1e-3
    assert np.all(ours.gamma_map[valid] <= theirs[valid] + tolerance)
    below_max = valid & (theirs < 2)
    assert np.median(theirs[below_max] - ours.gamma_map[below_max]) < 0.1
    return ours.pass_rate, theirs_rate


@pytest.mark.parametrize("kind, dd, dta", [("mixed", 2, 2), ("noise", 2, 1), ("mixed", 3, 1)])
def test_agrees_with_pymedphys_3d(kind, dd, dta):
    ax, ref, ax_e, ev = T.pair((20, 24, 24), (2.5, 2.5, 2.5), kind)
    rates = _compare(ax, ref, ax_e, ev, dd=dd, dta=dta, tolerance_pp=0.3)
    assert rates[1] < 100.0  # a pair that actually discriminates


@pytest.mark.parametrize(
    "kind, dd, dta, local",
    [("hotspot", 2, 2, False), ("mixed", 2, 1, False), ("noise", 2, 1, False), ("hotspot", 2, 2, True)],
)
def test_agrees_with_pymedphys_2d(kind, dd, dta, local):
    ax, ref, ax_e, ev = T.pair((40, 40), (2.0, 2.0), kind)
    rates = _compare(ax, ref, ax_e, ev, dd=dd, dta=dta, tolerance_pp=0.5, local=local)
    assert rates[1] < 100.0


def test_where_pymedphys_steps_bite_it_converges_to_us():
    # 1%/2 mm on this pair: pymedphys at interp_fraction 10 reports ~0.4 pp less; with a
    # finer step it reaches our value
    ax, ref, ax_e, ev = T.pair((40, 40), (2.0, 2.0), "mixed")
    ours, coarse = _compare(ax, ref, ax_e, ev, dd=1, dta=2, tolerance_pp=0.5)
    _, fine = _compare(ax, ref, ax_e, ev, dd=1, dta=2, tolerance_pp=0.1, interp_fraction=30)
    assert coarse <= fine <= ours + 1e-9


def test_agrees_with_pymedphys_on_anisotropic_non_identical_grids():
    ax = T.axes_for((16, 20, 22), (3.0, 2.0, 1.5))
    ax_e = [a[0] - 0.9 + np.arange(int((a[-1] - a[0]) / 2.2) + 2) * 2.2 for a in ax]
    ext = [a[-1] - a[0] for a in ax]
    ref = T.vmat_dose(ax, extent=ext)
    ev = T.vmat_dose(ax_e, extent=ext, seed=2, **T.KINDS["mixed"])
    rates = _compare(ax, ref, ax_e, ev, dd=2, dta=2, tolerance_pp=0.3)
    assert rates[1] < 100.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    ax, ref, _, ev = T.pair((20, 24, 24), (2.5, 2.5, 2.5), "mixed")
    cpu = gamma(ref, ev, axes_reference=ax, device="cpu")
    gpu = gamma(ref, ev, axes_reference=ax, device="cuda")
    np.testing.assert_allclose(gpu.gamma_map, cpu.gamma_map, atol=5e-3, equal_nan=True)
    assert abs(gpu.pass_rate - cpu.pass_rate) < 0.1


# -- larger sweep (on demand: pytest -m slow) ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in T.KINDS if k != "identical"])
@pytest.mark.parametrize("criteria", [(2, 2), (3, 3), (1, 1)])
def test_agrees_with_pymedphys_sweep_3d(kind, criteria):
    ax, ref, ax_e, ev = T.pair((32, 40, 40), (2.5, 2.5, 2.5), kind)
    try:
        _compare(ax, ref, ax_e, ev, dd=criteria[0], dta=criteria[1], tolerance_pp=0.3)
    except AssertionError:
        # where pymedphys's radius steps bite (steep gradients against a tight criterion),
        # its pass rate rises towards ours as its step shrinks
        _compare(ax, ref, ax_e, ev, dd=criteria[0], dta=criteria[1], tolerance_pp=0.3, interp_fraction=30)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["shift", "scale", "noise", "hotspot", "mixed"])
def test_agrees_with_pymedphys_sweep_2d_anisotropic(kind):
    ax, ref, ax_e, ev = T.pair((80, 70), (1.5, 2.5), kind)
    for dd, dta in ((2, 2), (3, 2), (2, 3)):
        _compare(ax, ref, ax_e, ev, dd=dd, dta=dta, tolerance_pp=0.5)


def test_points_settled_at_their_node_are_those_the_tolerance_allows():
    # the shared-grid pre-pass settles gamma <= g* without a search; g* must be exactly where
    # the search's own pruning threshold reaches zero (nothing can beat the value by more)
    from workbench_vmat.compute import gamma as G

    g = torch.linspace(0, 1.2, 240001, dtype=torch.float64)
    for tol_max in (0.002, 0.02, 0.1, 0.25, 0.5, 1.0):
        reaches_zero = G._below(g * g, tol_max) <= 0
        assert float(g[reaches_zero].max()) == pytest.approx(G._settled_below(tol_max), abs=1e-5)
        assert bool(reaches_zero[: int(reaches_zero.sum())].all())  # an interval from 0
