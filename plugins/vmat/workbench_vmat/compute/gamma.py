"""Gamma index analysis (Low et al. 1998) on torch, CPU or CUDA, in 1, 2 or 3 dimensions.

For every reference point r above the low-dose cutoff, gamma is the smallest value of

    sqrt(|x - r|^2 / dta^2 + (E(x) - R(r))^2 / dd_abs^2)

over positions x where the evaluation dose E is defined, E being interpolated between
its grid nodes (linear in 1-D, bilinear in 2-D, trilinear in 3-D). ``dd_abs`` is ``dd``
percent of the normalisation dose (global gamma: the prescription if given, else the
reference maximum) or of the reference dose at the point (local gamma). The search
stops at ``max_gamma * dta``; larger values are reported as ``max_gamma``.

How it is searched
------------------
pymedphys samples E on spheres of growing radius in steps of ``dta / interp_fraction``;
its discrete radii overestimate gamma (by up to ~0.25 where the dose gradient is steep)
and so slightly underestimate pass rates. Here the minimum is found by branch and bound
over boxes of the evaluation grid, which is both faster and closer to the exact value:

- On a box, E is multilinear. Split into its linear part ``alpha + g.y`` and a remainder
  (the nonlinear terms, whose range is found at the box corners), gamma^2 over the box is at
  least the value of a small convex problem, bounded below by its Lagrangian dual (one
  multiplier, from a Newton step), and never less than the squared distance to the
  box. Where that "centred" bound fails, a second one is tried: from the box corner
  nearest the point, the dose cannot fall faster than its least slope over the box along
  each axis (a linear lower envelope, exact at that corner, which is where minima often
  sit: the reference point, a face of the search cube). Where both fail, a third: the
  Lagrangian dual |y|^2 + 2 lam q(y) - lam^2, made convex over the box by an alpha-BB
  term (Gershgorin bound on q's mixed derivatives) and bounded by its first-order
  expansion at a point found by exact coordinate minimisation; its gap vanishes where
  the dual is convex and on the box faces, and it closes most boxes the other two leave
  open on noisy doses. A still cheaper test (distance
  plus the dose range at the corners) screens boxes first. The minimiser of the linear
  model is a good point: E is evaluated there exactly, which gives an attained value
  (an upper bound).
- Each point keeps its best value; boxes whose lower bound cannot beat it by more than a
  tolerance are dropped, the others are clipped to the cube of half-width
  ``sqrt(best^2 - margin)`` (nothing outside can beat the best by more than the
  tolerance) and split in 2^N, down to ``dta / interp_fraction``. The tolerance is 0.002
  near gamma = 1 and grows to the search resolution 1 / interp_fraction away from it
  (never more than half the distance to 1), so pass/fail decisions are those of the
  exact minimum (but within 0.004 of gamma = 1) and every value is within 0.1 of it at
  the default interp_fraction 10 (on average 0.006-0.012 above it on synthetic VMAT
  pairs; pymedphys at the same interp_fraction: 0.014-0.026 on average, up to 0.22).
- Points on evaluation nodes (identical or nested grids, the usual case) take a fast
  path. A value within the tolerance of zero at the node settles the point at once.
  Otherwise the dose around the node is known from its 3^N neighbours: attained values
  come from the node, the best point on each edge from it, the other neighbours and the
  linear model's minimiser; if the search cube fits in the 2^N cells around the node,
  one convex certificate from the least slopes of the cube's edges away from the node
  (values interpolated to the cube's faces: tighter than the whole cells' edges) settles
  most points, the same certificate per octant closes most octants, and the octants left
  are searched by branch and bound. On a shared grid, points whose dose difference at
  their own node is within the tolerance of zero are settled before any of this. Other
  points start from the cells within reach of their first estimate.

Everything is batched: points in chunks, boxes as lists of 1-D tensors (one entry per
box), ragged candidate lists, ``scatter_reduce(amin)`` for the running minimum.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["GammaResult", "gamma", "pass_rate"]

#: boxes handled per batch (bounds memory: ~ 2N + 2^N floats each, times 2^N children)
_MAX_BOXES = 1 << 17
#: level-0 (point, cell) candidates per batch
_MAX_CANDIDATES = 1 << 21


@dataclass(frozen=True)
class GammaResult:
    """Outcome of a gamma comparison.

    ``gamma_map`` has the reference's shape (NumPy, float32); NaN where gamma was not
    evaluated (below the cutoff, or no evaluation dose within ``max_gamma * dta``).
    Values are capped at ``max_gamma``. ``pass_rate`` is the percentage of evaluated
    points with gamma <= 1 (NaN when nothing was evaluated).
    """

    gamma_map: np.ndarray
    pass_rate: float
    n_evaluated: int
    n_passed: int
    dd: float
    dta: float
    cutoff: float
    local: bool
    normalisation_dose: float  # dose that dd (global) is a percentage of
    cutoff_dose: float  # absolute dose of the low-dose cutoff
    max_gamma: float
    interp_fraction: float
    device: str
    seconds: float

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (everything but the map)."""
        g = self.gamma_map[~np.isnan(self.gamma_map)]
        return {
            "pass_rate": self.pass_rate,
            "n_evaluated": self.n_evaluated,
            "n_passed": self.n_passed,
            "mean_gamma": float(g.mean()) if g.size else float("nan"),
            "gamma_p95": float(np.percentile(g, 95)) if g.size else float("nan"),
            "dd_percent": self.dd,
            "dta_mm": self.dta,
            "cutoff_percent": self.cutoff,
            "local": self.local,
            "normalisation_dose": self.normalisation_dose,
            "cutoff_dose": self.cutoff_dose,
            "max_gamma": self.max_gamma,
            "interp_fraction": self.interp_fraction,
            "device": self.device,
            "seconds": self.seconds,
        }


def pass_rate(gamma_map: np.ndarray, threshold: float = 1.0) -> float:
    """Percentage of non-NaN entries <= threshold (NaN if there are none)."""
    g = np.asarray(gamma_map)
    g = g[~np.isnan(g)]
    return float(100.0 * np.count_nonzero(g <= threshold) / g.size) if g.size else float("nan")


# --------------------------------------------------------------------------------------
# public entry
# --------------------------------------------------------------------------------------
def gamma(
    reference: Any,
    evaluation: Any,
    spacing: float | Sequence[float] | None = None,
    *,
    axes_reference: Sequence[Any] | None = None,
    axes_evaluation: Sequence[Any] | None = None,
    dd: float = 2.0,
    dta: float = 2.0,
    cutoff: float = 10.0,
    local: bool = False,
    prescription: float | None = None,
    interp_fraction: float = 10,
    max_gamma: float = 2.0,
    device: str | torch.device | None = None,
    threads: int | None = 1,
) -> GammaResult:
    """Gamma comparison of ``evaluation`` against ``reference`` (arrays of 1 to 3 dims).

    Geometry, either:

    - ``spacing``: one number or one per axis (mm); both arrays on the same grid, or
    - ``axes_reference`` / ``axes_evaluation``: one coordinate vector per array axis (mm),
      as pymedphys takes them. Grids may differ in size, origin and spacing; each
      evaluation axis must be strictly monotonic (it may be non-uniform). If only
      ``axes_reference`` is given, the evaluation is on the same grid.

    ``dd``: dose difference in percent (global: of ``prescription`` if given, else of the
    reference maximum; ``local=True``: of the reference dose at each point).
    ``dta``: distance to agreement, mm. ``cutoff``: reference points below ``cutoff``
    percent of the reference maximum are not evaluated. ``interp_fraction``: the search
    resolution is ``dta / interp_fraction`` (see the module notes). ``max_gamma``: search
    radius ``max_gamma * dta``; larger gammas are reported as ``max_gamma``. ``device``:
    torch device (default: CUDA when available, else CPU); computed in float32.
    ``threads``: torch CPU threads during the call (default 1; None keeps torch's
    setting, which is restored afterwards). The search issues many small tensor
    operations: more threads gain little (~20% with 2) and, when the cores are shared
    with other busy processes, make each operation wait for a descheduled thread
    (measured 30-100x slower on a loaded 2-core machine). Worker threads searching
    chunks side by side (each on one torch thread) were tried too: on 2 cores they
    doubled the CPU time and gained no wall clock.
    """
    t0 = time.perf_counter()
    ref = _as_array(reference, "reference")
    ev = _as_array(evaluation, "evaluation")
    ndim = ref.ndim
    if ndim not in (1, 2, 3):
        raise ValueError(f"reference must have 1, 2 or 3 dimensions, not {ndim}")
    if ev.ndim != ndim:
        raise ValueError(f"evaluation has {ev.ndim} dimensions, reference {ndim}")
    for name, value in (("dd", dd), ("dta", dta), ("interp_fraction", interp_fraction), ("max_gamma", max_gamma)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite positive number, not {value!r}")
    if not (math.isfinite(cutoff) and 0 <= cutoff < 100):
        raise ValueError(f"cutoff must be a percentage in [0, 100), not {cutoff!r}")
    if prescription is not None and not (math.isfinite(prescription) and prescription > 0):
        raise ValueError(f"prescription must be a finite positive dose, not {prescription!r}")

    ax_ref, ax_ev = _geometry(ref.shape, ev.shape, spacing, axes_reference, axes_evaluation)
    # evaluation axes increasing (flip the array where an axis decreases)
    for a in range(ndim):
        if ax_ev[a].size > 1 and ax_ev[a][1] < ax_ev[a][0]:
            ax_ev[a] = ax_ev[a][::-1].copy()
            ev = np.flip(ev, axis=a)
    # an axis of length 1 in both arrays at the same coordinate is not a dimension
    keep = []
    for a in range(ndim):
        if ev.shape[a] == 1:
            if ref.shape[a] == 1 and abs(float(ax_ref[a][0]) - float(ax_ev[a][0])) <= 1e-6 * max(1.0, abs(float(ax_ref[a][0]))):
                continue
            raise ValueError(
                f"evaluation has a single plane along axis {a}; it cannot be interpolated "
                "there (give both doses the same single plane, or more planes)"
            )
        keep.append(a)
    if not keep:
        raise ValueError("both doses are a single point; nothing to search")

    ref_max = float(ref.max()) if ref.size else 0.0
    if ref_max <= 0:
        raise ValueError("reference dose is zero everywhere")
    norm = float(prescription) if prescription is not None else ref_max
    cutoff_dose = cutoff / 100.0 * ref_max
    to_calc = ref >= cutoff_dose
    if local:
        to_calc &= ref > 0

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gamma_map = np.full(ref.shape, np.nan, dtype=np.float32)
    flat = np.flatnonzero(to_calc)
    previous = torch.get_num_threads()
    if dev.type == "cpu" and threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    try:
        values = _values_at(flat, ref, ev, ax_ref, ax_ev, keep, dd_percent=dd, norm=None if local else norm,
                            dta=dta, step=dta / interp_fraction, max_gamma=max_gamma, device=dev)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
    gamma_map.reshape(-1)[flat] = values
    n_eval = int(np.count_nonzero(~np.isnan(values)))
    n_pass = int(np.count_nonzero(values <= 1.0))
    return GammaResult(
        gamma_map=gamma_map,
        pass_rate=100.0 * n_pass / n_eval if n_eval else float("nan"),
        n_evaluated=n_eval,
        n_passed=n_pass,
        dd=float(dd),
        dta=float(dta),
        cutoff=float(cutoff),
        local=bool(local),
        normalisation_dose=norm,
        cutoff_dose=cutoff_dose,
        max_gamma=float(max_gamma),
        interp_fraction=float(interp_fraction),
        device=str(dev),
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        raise ValueError(f"{name} dose is empty")
    # the sum is finite unless some value is not (or the doses are absurdly large)
    if not (np.isfinite(a.sum()) or np.all(np.isfinite(a))):
        raise ValueError(f"{name} dose contains NaN or infinite values")
    return a


def _axis(values: Any, n: int, what: str) -> np.ndarray:
    v = np.asarray(values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if v.ndim != 1 or v.size != n:
        raise ValueError(f"{what} has {v.size} coordinates for an axis of {n} points")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} has non-finite coordinates")
    if n > 1:
        d = np.diff(v)
        if not (np.all(d > 0) or np.all(d < 0)):
            raise ValueError(f"{what} is not strictly monotonic")
    return v


def _geometry(ref_shape, ev_shape, spacing, axes_reference, axes_evaluation):
    ndim = len(ref_shape)
    if axes_reference is not None:
        if spacing is not None:
            raise ValueError("give either spacing or axes_reference/axes_evaluation, not both")
        if len(axes_reference) != ndim:
            raise ValueError(f"axes_reference has {len(axes_reference)} axes for a {ndim}-D reference")
        ax_ref = [_axis(v, n, f"axes_reference[{a}]") for a, (v, n) in enumerate(zip(axes_reference, ref_shape))]
        if axes_evaluation is None:
            if tuple(ev_shape) != tuple(ref_shape):
                raise ValueError(
                    f"evaluation shape {tuple(ev_shape)} differs from reference {tuple(ref_shape)}: "
                    "give axes_evaluation"
                )
            axes_evaluation = ax_ref
        if len(axes_evaluation) != ndim:
            raise ValueError(f"axes_evaluation has {len(axes_evaluation)} axes for a {ndim}-D evaluation")
        ax_ev = [_axis(v, n, f"axes_evaluation[{a}]") for a, (v, n) in enumerate(zip(axes_evaluation, ev_shape))]
        return ax_ref, ax_ev
    if axes_evaluation is not None:
        raise ValueError("axes_evaluation needs axes_reference")
    if spacing is None:
        raise ValueError("give the grid spacing (mm) or axes_reference/axes_evaluation")
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,))
    if not np.all(np.isfinite(sp) & (sp > 0)):
        raise ValueError(f"spacing must be positive, not {spacing!r}")
    if tuple(ev_shape) != tuple(ref_shape):
        raise ValueError(
            f"evaluation shape {tuple(ev_shape)} differs from reference {tuple(ref_shape)}: "
            "give axes_reference and axes_evaluation"
        )
    ax = [np.arange(n) * s for n, s in zip(ref_shape, sp)]
    return ax, [a.copy() for a in ax]


# --------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------
#: A box is refined only if it may hold a gamma lower than the current best by more than
#: tol(gamma) = clip(_TOL_SLOPE * |gamma - 1|, _TOL_MIN, 1 / interp_fraction): values are
#: within the search resolution (1 / interp_fraction, in gamma units: 0.1 at the default
#: 10) of the exact minimum, and tol <= |gamma - 1| / 2 keeps pass/fail decisions those of
#: the exact minimum (but for gammas within 2 * _TOL_MIN of 1).
_TOL_MIN = 0.002
_TOL_SLOPE = 0.5
#: Newton steps of the box subproblem (more: tighter bounds, slower steps)
_NEWTON = 1


def _values_at(flat, ref, ev, ax_ref, ax_ev, keep, *, dd_percent, norm, dta, step, max_gamma, device) -> np.ndarray:
    """gamma (float32, NaN out of reach) at the reference points with flat indices ``flat``.

    ``norm``: the dose that ``dd_percent`` is a percentage of, or None for local gamma.
    """
    values = np.full(flat.size, np.nan, dtype=np.float32)
    if not flat.size:
        return values
    dose = ref.reshape(-1)[flat]
    dd_abs = dd_percent / 100.0 * (dose if norm is None else np.full_like(dose, norm))
    todo = np.arange(flat.size)
    if ev.shape == ref.shape and all(np.array_equal(ax_ref[a], ax_ev[a]) for a in keep):
        # same grid: a point whose dose difference at its own node is within the tolerance
        # of zero is settled without a search (nothing can beat it by more); done here on
        # flat indices, before any per-axis bookkeeping (on smooth doses, most points)
        g0 = np.abs(ev.reshape(-1)[flat] - dose) / dd_abs
        settled = g0 <= _settled_below(_tol_max(step, dta))
        values[settled] = np.minimum(g0[settled], max_gamma)
        todo = np.flatnonzero(~settled)
        if not todo.size:
            return values
    idx = np.unravel_index(flat[todo], ref.shape)
    values[todo] = _gamma_points(
        np.stack([ax_ref[a][idx[a]] for a in keep], axis=1),
        dose[todo],
        1.0 / dd_abs[todo] ** 2,
        np.ascontiguousarray(ev.reshape([ev.shape[a] for a in keep])),
        [ax_ev[a] for a in keep],
        dta=dta,
        max_gamma=max_gamma,
        step=step,
        device=device,
        nodes=_node_tables([ax_ref[a] for a in keep], [ax_ev[a] for a in keep], [idx[a] for a in keep]),
    )
    return values


def _gamma_points(pos, dose, weight, ev, axes, *, dta, max_gamma, step, device, nodes=None) -> np.ndarray:
    """gamma for reference points ``pos`` (P, N) with doses ``dose`` against ``ev``.

    ``weight``: 1 / dd_abs^2 per point. ``nodes``: optional (node index (P, N), on a
    node (P,), on an interior node (P,)) from :func:`_node_tables`. Returns float32 (P,),
    NaN where no evaluation dose lies within ``max_gamma * dta``.
    """
    search = _Search(ev, axes, dta=dta, max_gamma=max_gamma, step=step, device=device)
    out = np.empty(len(dose), dtype=np.float32)
    chunk = 1 << 18 if torch.device(device).type == "cpu" else 1 << 20
    for s in range(0, len(dose), chunk):
        r = torch.as_tensor(pos[s : s + chunk].T.copy(), dtype=search.dtype, device=device)
        d = torch.as_tensor(dose[s : s + chunk], dtype=search.dtype, device=device)
        sw = torch.sqrt(torch.as_tensor(weight[s : s + chunk], dtype=search.dtype, device=device))
        hint = None
        if nodes is not None:
            j, on, inner = (x[s : s + chunk] for x in nodes)
            hint = (list(torch.as_tensor(j.T.copy(), device=device)), torch.as_tensor(on, device=device),
                    torch.as_tensor(inner, device=device))
        out[s : s + chunk] = search.run(list(r), d, sw, hint).cpu().numpy()
    return out


def _node_tables(ax_ref, ax_ev, idx):
    """Nearest evaluation node of reference points with grid indices ``idx`` (per axis).

    Looked up once per reference coordinate, not per point: (node (P, N) int64, on a
    node (P,), on an interior node (P,)), the same as ``_Search._nodes`` computes.
    """
    node, on, inner = [], None, None
    for rv, x, i in zip(ax_ref, ax_ev, idx):
        j = np.clip(np.searchsorted(x, rv), 1, len(x) - 1)
        j = j - (np.abs(rv - x[j - 1]) < np.abs(x[j] - rv))
        o = np.abs(x[j] - rv) <= 1e-4
        inn = o & (j >= 1) & (j <= len(x) - 2)
        node.append(j[i])
        on = o[i] if on is None else on & o[i]
        inner = inn[i] if inner is None else inner & inn[i]
    return np.stack(node, axis=1).astype(np.int64), on, inner


class _Search:
    """Branch-and-bound search of min gamma^2, batched over reference points.

    Inside, everything is in gamma units, per point: positions relative to the point
    divided by dta (``y``), doses as (E - R(r)) / dd_abs (``q``), so gamma^2 = |y|^2 + q^2.
    A box is described by its lower corner ``lo`` and size ``h`` (lists of N tensors, one
    entry per box) and by the centred multilinear coefficients ``c`` of its dose
    (2^N tensors): q(xi) = sum_S c[S] prod_{a in S} xi_a with xi in [-1, 1]^N over the box.
    Subset S is a bit mask, axis a being bit (N - 1 - a).
    """

    dtype = torch.float32

    def __init__(self, ev: np.ndarray, axes, *, dta, max_gamma, step, device):
        n = ev.ndim
        self.n, self.dta, self.device = n, float(dta), device
        self.g2_cap = float(max_gamma) ** 2
        self.bits = [1 << (n - 1 - a) for a in range(n)]
        self.subsets = list(range(1 << n))
        E = torch.as_tensor(ev, dtype=self.dtype, device=device)
        self.ax = [torch.as_tensor(a, dtype=self.dtype, device=device).contiguous() for a in axes]
        self.ax_next = [a[1:].contiguous() for a in self.ax]
        self.ax_prev = [a[:-1].contiguous() for a in self.ax]
        self.e_strides = [int(np.prod(ev.shape[a + 1 :])) for a in range(n)]
        cells = [m - 1 for m in ev.shape]
        self.c_strides = [int(np.prod(cells[a + 1 :])) for a in range(n)]
        self._E3 = E
        self._crange = None  # per-cell dose range, built on first use (general points only)
        self.E = E.reshape(-1)
        self.hstep = [((a[1:] - a[:-1]) / self.dta).contiguous() for a in self.ax]  # cell sizes, y units
        # flat offsets of the 2^N corners (corner bit set: upper node along that axis)
        self.corner_off = [sum(self.e_strides[a] for a in range(n) if c & self.bits[a]) for c in self.subsets]
        self.step = float(step) / self.dta  # boxes are not split below this size (y units)
        self.tol_max = _tol_max(step, dta)  # see _TOL_MIN
        # nonlinear terms (subsets of two or more axes)
        self.nonlinear = [S for S in self.subsets if S & (S - 1)]
        # corner values (bit order) <-> centred coefficients: q(corner) = sum_S c_S prod sign
        signs = np.array([[np.prod([1.0 if corner & b else -1.0 for b in self.bits if S & b]) for S in self.subsets]
                          for corner in self.subsets])
        self.to_corners = torch.as_tensor(signs, dtype=self.dtype, device=device)
        self.to_coef = torch.as_tensor(signs.T / len(self.subsets), dtype=self.dtype, device=device)

    def _below(self, ub):
        return _below(ub, self.tol_max)

    def _cell_range(self):
        """Least and greatest evaluation dose of each cell (flat, cell order)."""
        if self._crange is None:
            n = self.n
            cmin = cmax = self._E3
            for a in range(n):
                lo = [slice(None)] * n
                hi = [slice(None)] * n
                lo[a], hi[a] = slice(0, -1), slice(1, None)
                cmin = torch.minimum(cmin[tuple(lo)], cmin[tuple(hi)])
                cmax = torch.maximum(cmax[tuple(lo)], cmax[tuple(hi)])
            self._crange = (cmin.reshape(-1), cmax.reshape(-1))
        return self._crange

    # -- driver --------------------------------------------------------------------------
    def run(self, r: list, d: torch.Tensor, sw: torch.Tensor, nodes=None) -> torch.Tensor:
        n, dta = self.n, self.dta
        P = len(d)
        ub = torch.full((P,), self.g2_cap, dtype=self.dtype, device=self.device)
        done = torch.zeros(P, dtype=torch.bool, device=self.device)
        node, on_any, interior = nodes if nodes is not None else self._nodes(r)
        # points on a node whose dose difference there is already within the tolerance
        # of zero need no search (nothing can beat it by more than the tolerance)
        sel = torch.nonzero(on_any).squeeze(1)
        if len(sel):
            base = torch.zeros_like(sel)
            for a in range(n):
                base += node[a].index_select(0, sel) * self.e_strides[a]
            q0 = (self.E.index_select(0, base) - d.index_select(0, sel)) * sw.index_select(0, sel)
            q2 = torch.clamp(q0 * q0, max=self.g2_cap)
            ub.index_copy_(0, sel, q2)
            done.index_fill_(0, sel.masked_select(self._below(q2) <= 0), True)
        # boxes both searches leave (clipped, not yet evaluated) are refined together at the
        # end: one branch and bound instead of two, each of whose levels costs a few hundred
        # tensor operations however few boxes it holds
        deferred = []
        sel = torch.nonzero(interior & ~done).squeeze(1)
        if len(sel):
            later = []
            ub_a, cert = self._on_node([x.index_select(0, sel) for x in node], d.index_select(0, sel), sw.index_select(0, sel), later)
            ub.index_copy_(0, sel, ub_a)
            done.index_fill_(0, sel.masked_select(cert), True)
            deferred += [(sel.index_select(0, b[0]), *b[1:]) for b in later]
        rest = torch.nonzero(~done).squeeze(1)
        if len(rest):
            later = []
            ub_r = self._general(
                [x.index_select(0, rest) for x in r], d.index_select(0, rest), sw.index_select(0, rest), ub.index_select(0, rest), later,
                estimated=bool(interior.index_select(0, rest).all()),
            )
            ub.index_copy_(0, rest, ub_r)
            deferred += [(rest.index_select(0, b[0]), *b[1:]) for b in later]
        if deferred:
            cat = lambda k: [torch.cat([b[k][j] for b in deferred]) for j in range(len(deferred[0][k]))]  # noqa: E731
            self._refine(torch.cat([b[0] for b in deferred]), cat(1), cat(2), cat(3), ub, clipped=True)
        # NaN where the evaluation grid is out of reach
        reach = torch.zeros_like(d)
        for a in range(n):
            gap = (self.ax[a][0] - r[a]).clamp(min=0) + (r[a] - self.ax[a][-1]).clamp(min=0)
            reach += gap * gap
        g = torch.sqrt(ub.clamp_(min=0, max=self.g2_cap))
        g[reach / dta**2 > self.g2_cap * (1 + 1e-6)] = float("nan")
        return g

    def _nodes(self, r):
        """Nearest evaluation node of each point; whether the point sits on a node, on an interior one."""
        node, ok, inside = [], None, None
        for a in range(self.n):
            x = self.ax[a]
            j = torch.searchsorted(x, r[a]).clamp_(1, len(x) - 1)
            left = (r[a] - x.index_select(0, j - 1)).abs() < (x.index_select(0, j) - r[a]).abs()
            j = j - left.long()
            on = (x.index_select(0, j) - r[a]).abs() <= 1e-4
            inner = on & (j >= 1) & (j <= len(x) - 2)
            node.append(j)
            ok = on if ok is None else ok & on
            inside = inner if inside is None else inside & inner
        return node, ok, inside

    def _general(self, r, d, sw, ub, later, estimated=False):
        """Branch and bound from the cells around each point; returns the lowered ``ub``.

        ``later``: a list to leave small sets of boxes on (pid, lo, h, c: clipped, not yet
        evaluated) for the caller to refine with its own; larger ones are refined here
        (holding them all would take memory in proportion to the grid). ``estimated``:
        ``ub`` already holds estimates from the cells around each point (interior nodes),
        so the first estimate from the point's own cell is skipped.
        """
        n, dta = self.n, self.dta
        P = len(d)
        if not estimated:
            # the cell holding (or nearest to) each point
            idx = [
                (torch.searchsorted(self.ax[a], r[a], right=True) - 1).clamp_(0, len(self.ax[a]) - 2)
                for a in range(n)
            ]
            pid = torch.arange(P, device=self.device)
            lo, h, c = self._cells(idx, pid, r, d, sw)
            xi = [2 * (-lo[a]) / h[a] - 1 for a in range(n)]
            inside = torch.ones(P, dtype=torch.bool, device=self.device)
            for a in range(n):
                inside &= (xi[a] >= -1 - 1e-5) & (xi[a] <= 1 + 1e-5)
            q0 = self._multilinear(c, [x.clamp(-1, 1) for x in xi])
            ub = torch.where(inside, torch.minimum(ub, q0 * q0), ub)
            _, cand = self._evaluate(lo, h, c)
            ub = torch.minimum(ub, cand)

        # every cell within sqrt(ub) * dta
        radius = torch.sqrt(ub) * dta
        lo_idx, cnt = [], []
        for a in range(n):
            i_lo = torch.searchsorted(self.ax_next[a], r[a] - radius, right=False)
            i_hi = torch.searchsorted(self.ax_prev[a], r[a] + radius, right=True) - 1
            lo_idx.append(i_lo)
            cnt.append((i_hi - i_lo + 1).clamp_(min=0))
        counts = cnt[0]
        for a in range(1, n):
            counts = counts * cnt[a]
        csum = torch.cumsum(counts, 0)
        total = int(csum[-1])
        bounds = [0]
        if total > _MAX_CANDIDATES:
            cuts = torch.searchsorted(csum, torch.arange(_MAX_CANDIDATES, total, _MAX_CANDIDATES, device=self.device))
            bounds += sorted(set(int(x) for x in cuts.tolist()))
        bounds.append(P)
        for b0, b1 in zip(bounds[:-1], bounds[1:]):
            if b1 > b0:
                self._level0(r, d, sw, ub, b0, b1, lo_idx, cnt, counts, later)
        return ub

    # -- points on evaluation nodes ------------------------------------------------------
    def _on_node(self, node, d, sw, later):
        """Fast path for points on interior evaluation nodes (identical or nested grids).

        The dose on the 2^N cells around the node is known from the 3^N neighbour nodes.
        When the search cube (half-width: the first estimate of gamma) fits in those
        cells, the point is settled here: by one certificate for the whole cube (the
        least edge slopes away from the node), else octant by octant (the same with that
        octant's cell); the boxes of octants still open go on ``later`` (pid: index into
        ``d``; clipped, not yet evaluated) for the caller's branch and bound.
        Returns (gamma^2, settled mask); unsettled points go to the general search.
        """
        n = self.n
        offs = list(itertools.product((-1, 0, 1), repeat=n))
        base = torch.zeros_like(node[0])
        for a in range(n):
            base += node[a] * self.e_strides[a]
        v = {}
        for o in offs:
            off = sum(oa * st for oa, st in zip(o, self.e_strides))
            v[o] = (self.E.index_select(0, base + off) - d) * sw
        hm = [self.hstep[a].index_select(0, node[a] - 1) for a in range(n)]
        hp = [self.hstep[a].index_select(0, node[a]) for a in range(n)]
        zero = (0,) * n
        unit = [tuple(s if b == a else 0 for b in range(n)) for a in range(n) for s in (-1, 1)]
        q0 = v[zero]
        g = [(v[unit[2 * a + 1]] - v[unit[2 * a]]) / (hm[a] + hp[a]) for a in range(n)]
        t = _newton(q0, g, [-x for x in hm], hp)
        y = _clamp_step(t, g, [-x for x in hm], hp)
        qy = _separable(v, y, hm, hp)
        ub = torch.minimum(torch.minimum(q0 * q0, _norm2(y) + qy * qy), torch.full_like(q0, self.g2_cap))
        # more attained values, exact and cheap: the best point on each of the 2N edges from
        # the node (the dose is linear there) and the other neighbour nodes
        for a in range(n):
            for u, ha in ((unit[2 * a], hm[a]), (unit[2 * a + 1], hp[a])):
                s = (v[u] - q0) / ha
                ta = torch.minimum((-q0 * s / (1.0 + s * s)).clamp(min=0), ha)
                qa = q0 + s * ta
                ub = torch.minimum(ub, ta * ta + qa * qa)
        # (the diagonal neighbours only where they are near enough to matter)
        hmin = hm[0].minimum(hp[0])
        for a in range(1, n):
            hmin = hmin.minimum(hm[a]).minimum(hp[a])
        far = torch.nonzero(ub > 2.0 * hmin * hmin).squeeze(1) if n > 1 else hmin[:0].long()
        if len(far):
            ub_f = ub.index_select(0, far)
            for o in offs:
                if sum(1 for x in o if x) >= 2:
                    dist = None
                    for a in range(n):
                        if o[a]:
                            x = (hp[a] if o[a] > 0 else hm[a]).index_select(0, far)
                            dist = x * x if dist is None else dist + x * x
                    vo = v[o].index_select(0, far)
                    ub_f = torch.minimum(ub_f, dist + vo * vo)
            ub.index_copy_(0, far, ub_f)
        rho = torch.sqrt(ub)
        # nothing beyond |y| = sqrt(self._below(ub)) can beat ub by more than the tolerance
        reach = torch.sqrt(self._below(ub))
        settled = self._below(ub) <= 0  # within the tolerance of zero: nothing can do better by more
        fits = ~settled
        for a in range(n):
            fits &= (rho < 0.999 * hm[a]) & (rho < 0.999 * hp[a])
        # the dose over the cube [-reach, reach]^N left to search, at {-reach, 0, reach}^N:
        # in each octant of the cube a box within one cell, so multilinear (exact)
        w = _lerp_cube(v, reach, hm, hp)
        # cheapest certificate first. Take the dose's sign so that it is >= 0 at the node
        # (fw); moving away from the node along an axis, fw never falls faster than the
        # least slope K_a of the cube's edges parallel to that axis (in an octant the
        # slope along an axis is a mean of its parallel edges' slopes). So over the cube
        # gamma^2 >= |y|^2 + (|q0| + sum_a K_a |y_a|)_+^2: a convex problem on [0, reach]^N
        flip = _sign(q0)
        fw = {o: x * flip for o, x in w.items()}
        ks = []
        for a in range(n):
            m = None
            for side in (1, -1):
                for o in offs:
                    if o[a] == 0:
                        x = fw[o[:a] + (side,) + o[a + 1 :]] - fw[o]
                        m = x if m is None else torch.minimum(m, x)
            ks.append(m / reach)
        zero_lo = [torch.zeros_like(rho)] * n
        hi_c = [reach] * n
        alpha = q0.abs()
        t = _newton(alpha, ks, zero_lo, hi_c).clamp(min=0)
        quick = fits & (_dual_bound(alpha, ks, None, zero_lo, hi_c, t) >= self._below(ub))
        settled = settled | quick
        fits = fits & ~quick
        cert = settled
        sel = torch.nonzero(fits).squeeze(1)
        if len(sel) == 0:
            return ub, cert
        # octant by octant: first the same certificate with the slopes of that octant only;
        # the octants it leaves open are searched by branch and bound
        pick = lambda x: x.index_select(0, sel)  # noqa: E731
        rho_s = pick(reach)
        ub_s = pick(ub)
        fw_s = {o: pick(x) for o, x in fw.items()}
        zero_lo = [torch.zeros_like(rho_s)] * n
        hi_c = [rho_s] * n
        alpha = pick(alpha)
        thr = self._below(ub_s)
        octants = list(itertools.product((-1, 1), repeat=n))
        ks = []  # per axis: the least slope in each octant, stacked (octant, point)
        for a in range(n):
            per_octant = []
            for sgn in octants:
                m = None
                for o in itertools.product(*[(0,) if b == a else (0, sgn[b]) for b in range(n)]):
                    x = fw_s[o[:a] + (sgn[a],) + o[a + 1 :]] - fw_s[o]
                    m = x if m is None else torch.minimum(m, x)
                per_octant.append(m)
            ks.append(torch.stack(per_octant) / rho_s)
        t = _newton(alpha, ks, zero_lo, hi_c).clamp(min=0)
        still = list((_dual_bound(alpha, ks, None, zero_lo, hi_c, t) < thr).unbind(0))
        still = [torch.nonzero(x).squeeze(1) for x in still]
        if sum(len(x) for x in still):
            w = {o: pick(x) for o, x in w.items()}
            pids, los, hs, cs = [], [[] for _ in range(n)], [[] for _ in range(n)], [[] for _ in self.subsets]
            for sgn, idx in zip(octants, still):
                if len(idx) == 0:
                    continue
                rho_k = rho_s.index_select(0, idx)
                corners = [w[tuple(max(sa, 0) if cb else min(sa, 0) for sa, cb in zip(sgn, cc))].index_select(0, idx) for cc in itertools.product((0, 1), repeat=n)]
                coef = self._hadamard(corners)
                for S in self.subsets:
                    cs[S].append(coef[S])
                for a in range(n):
                    los[a].append(-rho_k if sgn[a] < 0 else torch.zeros_like(rho_k))
                    hs[a].append(rho_k)
                pids.append(idx)
            pid = torch.cat(pids)
            los = [torch.cat(x) for x in los]
            hs = [torch.cat(x) for x in hs]
            cs = [torch.cat(x) for x in cs]
            if len(pid) <= _MAX_BOXES >> 3:
                # few: the caller refines them with its own boxes (pid: index into d); many:
                # evaluating all before opening any (below) lowers ub first, which pays
                later.append((sel.index_select(0, pid), los, hs, cs))
                ub.index_copy_(0, sel, ub_s)
                cert.index_fill_(0, sel, True)
                return ub, cert
            # every octant is evaluated (lowering ub) before any is opened, in batches
            # small enough for the caches
            lbs = []
            for b in range(0, len(pid), _MAX_BOXES):
                sl = slice(b, b + _MAX_BOXES)
                lb_o, cand_o = self._evaluate([x[sl] for x in los], [x[sl] for x in hs], [x[sl] for x in cs])
                ub_s.scatter_reduce_(0, pid[sl], cand_o, reduce="amin")
                lbs.append(lb_o)
            lb_o = torch.cat(lbs)
            for b in range(0, len(pid), _MAX_BOXES):
                sl = slice(b, b + _MAX_BOXES)
                p_b, lo_b, h_b, c_b = pid[sl], [x[sl] for x in los], [x[sl] for x in hs], [x[sl] for x in cs]
                open_ = self._open(p_b, lo_b, h_b, c_b, lb_o[sl], ub_s)
                if len(open_):
                    pick = lambda x: x.index_select(0, open_)  # noqa: E731
                    boxes = (pick(p_b), [pick(x) for x in lo_b], [pick(x) for x in h_b], [pick(x) for x in c_b])
                    later += [(sel.index_select(0, k[0]), *k[1:]) for k in self._split(*boxes, ub_s)]
        ub.index_copy_(0, sel, ub_s)
        cert.index_fill_(0, sel, True)
        return ub, cert

    def _cells(self, idx, pid, r, d, sw):
        """Boxes (lo, h, coefficients) of cells with multi-index ``idx`` seen from points ``pid``."""
        n, dta = self.n, self.dta
        lo, h = [], []
        base = torch.zeros_like(idx[0])
        for a in range(n):
            x0 = self.ax[a].index_select(0, idx[a])
            x1 = self.ax_next[a].index_select(0, idx[a])
            lo.append((x0 - r[a].index_select(0, pid)) / dta)
            h.append((x1 - x0) / dta)
            base += idx[a] * self.e_strides[a]
        corners = [self.E.index_select(0, base + off) if off else self.E.index_select(0, base) for off in self.corner_off]
        c = self._hadamard(corners)
        c[0] = (c[0] - d.index_select(0, pid))
        s = sw.index_select(0, pid)
        return lo, h, [x * s for x in c]

    def _corner_bound(self, lo, h, c):
        """Lower bound of gamma^2 over each box: squared distance plus the least |q| at its corners."""
        v = self.to_corners @ torch.stack(c)  # (2^N, boxes): q at the corners
        gap = v.amin(0).clamp(min=0) - v.amax(0).clamp(max=0)
        out = gap * gap
        for a in range(self.n):
            da = lo[a].clamp(min=0) + (-(lo[a] + h[a])).clamp(min=0)
            out = out + da * da
        return out

    def _hadamard(self, v):
        """Corner values -> centred multilinear coefficients (Walsh-Hadamard, one matmul)."""
        return list((self.to_coef @ torch.stack(v)).unbind(0))

    def _level0(self, r, d, sw, ub, b0, b1, lo_idx, cnt, counts, later):
        n, dta, dev = self.n, self.dta, self.device
        cts = counts[b0:b1]
        total = int(cts.sum())
        if total == 0:
            return
        pid = torch.repeat_interleave(torch.arange(b0, b1, device=dev), cts)
        start = torch.cumsum(cts, 0) - cts
        k = torch.arange(total, device=dev) - start.index_select(0, pid - b0)
        idx = [None] * n
        cell = torch.zeros(total, dtype=torch.long, device=dev)
        lb = torch.zeros(total, dtype=self.dtype, device=dev)
        for a in reversed(range(n)):
            m = cnt[a].index_select(0, pid)
            ia = lo_idx[a].index_select(0, pid) + k % m
            k = k // m
            idx[a] = ia
            cell += ia * self.c_strides[a]
            ra = r[a].index_select(0, pid)
            gap = (self.ax[a].index_select(0, ia) - ra).clamp(min=0) + (ra - self.ax_next[a].index_select(0, ia)).clamp(min=0)
            lb += gap * gap
        lb *= 1.0 / dta**2
        if total * 8 > len(self.E):
            # many candidates: screen them by each cell's dose range (built once per call;
            # for a few, the corner test in _refine screens the same boxes more cheaply)
            dp = d.index_select(0, pid)
            cmin, cmax = self._cell_range()
            dgap = ((cmin.index_select(0, cell) - dp).clamp(min=0) + (dp - cmax.index_select(0, cell)).clamp(min=0)) * sw.index_select(0, pid)
            lb += dgap * dgap
        keep = torch.nonzero(lb < self._below(ub.index_select(0, pid))).squeeze(1)
        if len(keep) == 0:
            return
        pid = pid.index_select(0, keep)
        idx = [ia.index_select(0, keep) for ia in idx]
        lo, h, c = self._cells(idx, pid, r, d, sw)
        if len(pid) <= _MAX_BOXES:
            later.append((pid, *self._clip(lo, h, c, torch.sqrt(self._below(ub.index_select(0, pid))))))
        else:
            self._refine(pid, lo, h, c, ub)

    # -- branch and bound ----------------------------------------------------------------
    def _refine(self, pid, lo, h, c, ub, clipped=False):
        """Evaluate boxes, lower ``ub`` (indexed by ``pid``), split the promising ones."""
        stack = [(pid, lo, h, c, clipped)]
        while stack:
            pid, lo, h, c, clipped = stack.pop()
            m = len(pid)
            if m > _MAX_BOXES:
                for s in range(0, m, _MAX_BOXES):
                    sl = slice(s, s + _MAX_BOXES)
                    stack.append((pid[sl], [x[sl] for x in lo], [x[sl] for x in h], [x[sl] for x in c], clipped))
                continue
            if not clipped:
                lo, h, c = self._clip(lo, h, c, torch.sqrt(self._below(ub.index_select(0, pid))))
            # a cheap test first: distance to the box and the dose range at its corners
            near = self._corner_bound(lo, h, c) < self._below(ub.index_select(0, pid))
            if not bool(near.all()):
                keep = torch.nonzero(near).squeeze(1)
                if len(keep) == 0:
                    continue
                pid = pid.index_select(0, keep)
                lo = [x.index_select(0, keep) for x in lo]
                h = [x.index_select(0, keep) for x in h]
                c = [x.index_select(0, keep) for x in c]
                m = len(pid)
            lb, cand = self._evaluate(lo, h, c)
            ub.scatter_reduce_(0, pid, cand, reduce="amin")
            big = h[0] > self.step
            for x in h[1:]:
                big |= x > self.step
            keep = self._open(pid, lo, h, c, lb, ub, big)
            if len(keep) == 0:
                continue
            if len(keep) < m:
                pid = pid.index_select(0, keep)
                lo = [x.index_select(0, keep) for x in lo]
                h = [x.index_select(0, keep) for x in h]
                c = [x.index_select(0, keep) for x in c]
            for child in self._children_chunks(pid, lo, h, c, ub):
                stack.append((*child, True))

    def _split(self, pid, lo, h, c, ub):
        """Children (clipped, in chunks) of the boxes still larger than the search step."""
        big = h[0] > self.step
        for x in h[1:]:
            big |= x > self.step
        keep = torch.nonzero(big).squeeze(1)
        if len(keep) == 0:
            return
        pick = lambda x: x.index_select(0, keep)  # noqa: E731
        yield from self._children_chunks(pick(pid), [pick(x) for x in lo], [pick(x) for x in h], [pick(x) for x in c], ub)

    def _children_chunks(self, pid, lo, h, c, ub):
        """:meth:`_children` of at most ``_MAX_BOXES >> N`` parents at a time.

        Bounded batches keep every temporary small enough for the CPU caches: splitting
        2.6 M children at once ran ~8x slower per child than batches of 1 M (memory
        traffic and fresh page mappings for each large temporary).
        """
        step = max(1, _MAX_BOXES >> self.n)
        for s in range(0, len(pid), step):
            sl = slice(s, s + step)
            child = self._children(pid[sl], [x[sl] for x in lo], [x[sl] for x in h], [x[sl] for x in c], ub)
            if child is not None:
                yield child

    def _children(self, pid, lo, h, c, ub):
        """Split boxes in 2^N halves; keep the children near enough to beat ``ub``."""
        n, m = self.n, len(pid)
        half = [x * 0.5 for x in h]
        # squared distance from the point to each child: sum over axes of lower/upper half
        dist = None
        for a in range(n):
            los = torch.stack([lo[a], lo[a] + half[a]])  # (2, m)
            gap = los.clamp(min=0) + (-(los + half[a])).clamp(min=0)
            gap = (gap * gap).reshape((1,) * a + (2,) + (1,) * (n - 1 - a) + (m,))
            dist = gap if dist is None else dist + gap
        dist = dist.reshape(1 << n, m)  # child index bits: axis a is bit (N - 1 - a)
        keep = torch.nonzero((dist < self._below(ub.index_select(0, pid))[None, :]).reshape(-1)).squeeze(1)
        if len(keep) == 0:
            return None
        ci = torch.div(keep, m, rounding_mode="floor")
        bi = keep - ci * m
        pid = pid.index_select(0, bi)
        rho = torch.sqrt(self._below(ub.index_select(0, pid)))
        lo_c, h_c = [], []
        c = [x.index_select(0, bi) for x in c]
        for a, bit in enumerate(self.bits):
            # the child's extent along a (lower or upper half), clipped to [-rho, rho]
            up = ((ci & bit) != 0).to(self.dtype)
            la = lo[a].index_select(0, bi)
            ha = h[a].index_select(0, bi)
            a0 = la + up * (0.5 * ha)
            new_lo = torch.maximum(a0, -rho)
            new_hi = torch.maximum(torch.minimum(a0 + 0.5 * ha, rho), new_lo)
            # substitute xi_a = m + s xi'_a in the parent's coefficients
            inv = 1.0 / ha
            mid = (new_lo + new_hi - 2.0 * la) * inv - 1.0
            scl = (new_hi - new_lo) * inv
            for S in self.subsets:
                if not S & bit:
                    c[S] = c[S] + mid * c[S | bit]
                    c[S | bit] = scl * c[S | bit]
            lo_c.append(new_lo)
            h_c.append((new_hi - new_lo).clamp(min=1e-12))
        return pid, lo_c, h_c, c

    def _clip(self, lo, h, c, rho):
        """Shrink boxes to the cube [-rho, rho]^N (nothing outside can beat gamma = rho)."""
        lo, h, c = list(lo), list(h), list(c)
        for a, bit in enumerate(self.bits):
            hi = lo[a] + h[a]
            new_lo = torch.maximum(lo[a], -rho)
            new_hi = torch.maximum(torch.minimum(hi, rho), new_lo)
            inv = 1.0 / h[a]
            m = (new_lo + new_hi - 2.0 * lo[a]) * inv - 1.0  # new centre, old xi units
            s = (new_hi - new_lo) * inv  # new half width, old xi units
            for S in self.subsets:
                if not S & bit:
                    c[S] = c[S] + m * c[S | bit]
                    c[S | bit] = s * c[S | bit]
            lo[a] = new_lo
            h[a] = (new_hi - new_lo).clamp(min=1e-12)
        return lo, h, c

    # -- one box -------------------------------------------------------------------------
    def _multilinear(self, c, xi):
        """q(xi) from centred coefficients."""
        v = list(c)
        for a, bit in enumerate(self.bits):
            for S in self.subsets:
                if not S & bit:
                    v[S] = v[S] + v[S | bit] * xi[a]
        return v[0]

    def _linear_model(self, lo, h, c):
        """(alpha, g, hi): the box's dose without its nonlinear terms is alpha + g.y (y units)."""
        g = [2.0 * c[bit] / h[a] for a, bit in enumerate(self.bits)]
        hi = [lo[a] + h[a] for a in range(self.n)]
        alpha = c[0]
        for a, bit in enumerate(self.bits):
            alpha = alpha - c[bit] * (2.0 * lo[a] / h[a] + 1.0)
        return alpha, g, hi

    def _evaluate(self, lo, h, c):
        """Lower bound of gamma^2 over each box, and gamma^2 at a good point of the box.

        The dose is its linear part alpha + g.y plus a remainder (the nonlinear terms)
        whose range over the box is that over its corners. The point is (nearly) the
        minimiser of |y|^2 + (alpha + g.y)^2 over the box, found by Newton steps on its
        scalar dual; the true dose is evaluated there. The bound is the Lagrangian dual of
        the problem with the dose free to move within the remainder's range, at the
        multiplier from those steps (any multiplier gives a valid bound).
        """
        n = self.n
        alpha, g, hi = self._linear_model(lo, h, c)
        # range of the nonlinear remainder: a multilinear function, extreme at the corners
        rem = None
        if self.nonlinear:
            v = self.to_corners[:, self.nonlinear] @ torch.stack([c[S] for S in self.nonlinear])
            rem = (v.amin(0), v.amax(0))
        t = _newton(alpha, g, lo, hi)
        y = _clamp_step(t, g, lo, hi)
        q = self._multilinear(c, [(2.0 * (y[a] - lo[a]) / h[a] - 1.0).clamp(-1, 1) for a in range(n)])
        return _dual_bound(alpha, g, rem, lo, hi, t), _norm2(y) + q * q

    def _slope_bound(self, lo, h, c):
        """Second lower bound of gamma^2 over each box, tight near the corner nearest the point.

        From that corner y0, q(y) >= q(y0) + sum_a k_a (y_a - y0_a) with k_a the least slope
        of q along a over the box (moving away from y0: the signs of y_a - y0_a are fixed);
        the slope of a multilinear q along a varies by at most the sum of |c_S|, a in S,
        |S| >= 2. So gamma^2 >= |y|^2 + (that linear function)_+^2 (for q(y0) >= 0; the
        mirror image otherwise), whose dual bound is taken at any multiplier >= 0. Unlike
        the centred bound its error vanishes at y0, where the minimum often lies (at the
        reference point, on a face of the search cube).
        """
        n = self.n
        hi = [lo[a] + h[a] for a in range(n)]
        # anchor corner: per axis the end nearer to 0 (sign +1: upper end)
        up = [hi[a] < -lo[a] for a in range(n)]
        up_f = [x.to(self.dtype) for x in up]
        sg = [x * 2.0 - 1.0 for x in up_f]
        q0 = self._multilinear(c, sg)
        flip = _sign(q0)
        alpha = q0 * flip
        ks = []
        for a, bit in enumerate(self.bits):
            # slope of flip * q along a (xi units): flip * c[bit] plus a multilinear
            # function of the other coordinates, whose range is found at their corners
            terms = [S for S in self.nonlinear if S & bit]
            slope = flip * c[bit]
            if terms:
                fc = {S: flip * c[S] for S in terms}
                others = [b for b in self.bits if b != bit]
                emin = emax = None
                for signs in itertools.product((1.0, -1.0), repeat=len(others)):
                    e = None
                    for S in terms:
                        neg = sum(1 for b, sb in zip(others, signs) if S & b and sb < 0) % 2
                        x = fc[S]
                        e = (-x if neg else x) if e is None else (e - x if neg else e + x)
                    emin = e if emin is None else torch.minimum(emin, e)
                    emax = e if emax is None else torch.maximum(emax, e)
                # moving away from the anchor: towards +y the least slope counts, towards
                # -y (upper anchor) the greatest
                k = slope + emin + up_f[a] * (emax - emin)
            else:
                k = slope
            k = k * (2.0 / h[a])
            y0 = lo[a] + up_f[a] * h[a]
            alpha = alpha - k * y0
            ks.append(k)
        t = _newton(alpha, ks, lo, hi).clamp(min=0)
        return _dual_bound(alpha, ks, None, lo, hi, t)

    def _convex_bound(self, lo, h, c):
        """Third lower bound of gamma^2 over each box: the dual function made convex (alpha-BB).

        For any multiplier lam, gamma^2 = |y|^2 + q^2 >= phi(y) - lam^2 with phi = |y|^2 +
        2 lam q(y). phi's Hessian is 2I plus 2 lam times q's mixed second derivatives, which
        over the box are at most sum |c_S| (S holding both axes) * 4 / (h_a h_b); adding
        alpha_a (y_a - lo_a)(y_a - hi_a) (<= 0 on the box, zero on its faces) with alpha_a
        from Gershgorin's rule makes it convex, so its first-order expansion at any point
        ŷ bounds it below over the box. ŷ comes from exact coordinate-wise minimisation
        (phi is quadratic along each axis; one sweep) from the linear model's minimiser, lam
        is q there (further rounds with lam = q(ŷ), and more sweeps, closed a few % more
        boxes and cost more).
        The centred bound replaces the nonlinear terms by their range (a gap of ~ sum |c_S|
        everywhere); this one's gap vanishes where phi is convex and at the box faces,
        where minima often lie. On noisy doses it closes most of the boxes the other two
        leave open (measured: ~80 % of the octants around nodes).
        """
        n = self.n
        alpha, g, hi = self._linear_model(lo, h, c)
        y = _clamp_step(_newton(alpha, g, lo, hi), g, lo, hi)
        inv_h = [1.0 / x for x in h]
        # row sums of |mixed second derivatives| (y units) over the box
        rows = [None] * n
        for a in range(n):
            for b in range(a + 1, n):
                s = None
                for S in self.nonlinear:
                    if S & self.bits[a] and S & self.bits[b]:
                        s = c[S].abs() if s is None else s + c[S].abs()
                s = s * (4.0 * inv_h[a] * inv_h[b])
                rows[a] = s if rows[a] is None else rows[a] + s
                rows[b] = s if rows[b] is None else rows[b] + s
        xi = [(2.0 * (y[a] - lo[a]) * inv_h[a] - 1.0).clamp(-1, 1) for a in range(n)]
        lam = self._multilinear(c, xi)
        al = [(lam.abs() * r - 1.0).clamp(min=0) for r in rows]
        for a in range(n):  # one sweep of exact coordinate minimisation
            slope = 4.0 * lam * self._partial(c, xi, a) * inv_h[a]
            ya = (al[a] * (lo[a] + hi[a]) - slope) / (2.0 * (1.0 + al[a]))
            y[a] = torch.minimum(torch.maximum(ya, lo[a]), hi[a])
            xi[a] = (2.0 * (y[a] - lo[a]) * inv_h[a] - 1.0).clamp(-1, 1)
        lb = 2.0 * lam * self._multilinear(c, xi) - lam * lam
        for a in range(n):
            lb = lb + y[a] * y[a] + al[a] * (y[a] - lo[a]) * (y[a] - hi[a])
            grad = 2.0 * (1.0 + al[a]) * y[a] - al[a] * (lo[a] + hi[a]) + 4.0 * lam * self._partial(c, xi, a) * inv_h[a]
            lb = lb + torch.minimum(grad * (lo[a] - y[a]), grad * (hi[a] - y[a]))
        return lb

    def _partial(self, c, xi, a):
        """dq/dxi_a at ``xi`` (the coefficient of xi_a, a multilinear function of the others)."""
        bit = self.bits[a]
        out = None
        for S in self.subsets:
            if S & bit:
                term = c[S]
                for b, bb in enumerate(self.bits):
                    if b != a and S & bb:
                        term = term * xi[b]
                out = term if out is None else out + term
        return out

    def _open(self, pid, lo, h, c, lb, ub, mask=None):
        """Indices of boxes (among ``mask``) that may beat ``ub`` by more than the tolerance.

        The centred bound ``lb`` is tested first, then the convex bound where it failed
        (on noisy doses it closes ~80 % of those boxes, the slope bound ~40 %), then the
        slope bound on the few left (it closes some the convex one cannot).
        """
        thr = self._below(ub.index_select(0, pid))
        keep = torch.nonzero(lb < thr if mask is None else (lb < thr) & mask).squeeze(1)
        if len(keep) == 0 or not self.nonlinear:
            return keep
        pick = lambda x: x.index_select(0, keep)  # noqa: E731
        lo, h, c, thr = [pick(x) for x in lo], [pick(x) for x in h], [pick(x) for x in c], pick(thr)
        still = torch.nonzero(~(self._convex_bound(lo, h, c) >= thr)).squeeze(1)  # NaN: open
        if len(still) == 0:
            return still
        keep = keep.index_select(0, still)
        pick = lambda x: x.index_select(0, still)  # noqa: E731
        lb3 = self._slope_bound([pick(x) for x in lo], [pick(x) for x in h], [pick(x) for x in c])
        return keep.masked_select(lb3 < pick(thr))


def _sign(x):
    """+1 where x >= 0 (or +0.0), else -1 (torch.where is ~25x slower than arithmetic on CPU)."""
    return torch.ones_like(x).copysign_(x)


def _norm2(y):
    out = y[0] * y[0]
    for x in y[1:]:
        out = out + x * x
    return out


def _clamp_step(t, g, lo, hi):
    return [torch.minimum(torch.maximum(-t * ga, la), ha) for ga, la, ha in zip(g, lo, hi)]


def _newton(alpha, g, lo, hi):
    """Residual t of min over the box [lo, hi] of |y|^2 + (alpha + g.y)^2 (approximately).

    At the optimum y = clamp(-t g, lo, hi) and t = alpha + g . y: Newton steps on that
    scalar equation from the unconstrained solution.
    """
    g2 = [ga * ga for ga in g]
    t = alpha / (1.0 + sum(g2[1:], g2[0]))
    for _ in range(_NEWTON):
        s, slope = alpha, None
        for ga, g2a, la, ha in zip(g, g2, lo, hi):
            z = -t * ga
            y = torch.minimum(torch.maximum(z, la), ha)
            s = s + ga * y
            free = g2a * (y == z)
            slope = free if slope is None else slope + free
        t = t - (t - s) / (slope + 1.0)
    return t


def _dual_bound(alpha, g, rem, lo, hi, t):
    """Lower bound of min over the box of |y|^2 + (alpha + g.y + e)^2 over e in [rlo, rhi].

    Lagrangian dual: for any multiplier lam, sum_a min_{y_a} (y_a^2 + 2 lam g_a y_a) +
    2 lam alpha + 2 min(lam rlo, lam rhi) - lam^2 is below it; lam is the Newton residual
    moved into the remainder's range. Never below the squared distance to the box.
    """
    if rem is None:
        lam = t
        lb = 2.0 * lam * alpha - lam * lam
    else:
        rlo, rhi = rem
        lam = (t - rhi).clamp(min=0) + (t - rlo).clamp(max=0)
        lb = 2.0 * lam * alpha - lam * lam + 2.0 * torch.minimum(lam * rlo, lam * rhi)
    near = None
    for ga, la, ha in zip(g, lo, hi):
        ya = torch.minimum(torch.maximum(-lam * ga, la), ha)
        lb = lb + ya * (ya + 2.0 * lam * ga)
        y0 = torch.minimum(la.clamp(min=0), ha)
        near = y0 * y0 if near is None else near + y0 * y0
    return torch.maximum(lb, near)


def _separable(v, y, hm, hp):
    """Dose at offsets ``y`` from 3^N values ``v`` at {-hm, 0, hp}^N (multilinear per piece)."""
    cur = v
    for a in range(len(y)):
        up = (y[a] >= 0).to(y[a].dtype)
        f = y[a].abs() / (hm[a] + up * (hp[a] - hm[a]))
        cur = {o: torch.lerp(cur[(0,) + o], torch.lerp(cur[(-1,) + o], cur[(1,) + o], up), f) for o in {k[1:] for k in cur}}
    return cur[()]


def _lerp_cube(v, rho, hm, hp):
    """Values at {-rho, 0, rho}^N from values at {-hm, 0, hp}^N (piecewise multilinear)."""
    cur = dict(v)
    for a in range(len(hm)):
        f = {-1: rho / hm[a], 1: rho / hp[a]}
        cur = {o: x if o[a] == 0 else torch.lerp(cur[o[:a] + (0,) + o[a + 1 :]], x, f[o[a]]) for o, x in cur.items()}
    return cur


def _tol_max(step: float, dta: float) -> float:
    """Largest tolerance (gamma units): the search resolution ``step / dta``, see _TOL_MIN."""
    return max(_TOL_MIN, float(step) / float(dta))


def _settled_below(tol_max: float) -> float:
    """Largest gamma g whose own tolerance reaches zero (g <= tol(g), see _below): the
    fixed point of tol, so no value anywhere can beat it by more than the tolerance."""
    return max(_TOL_MIN, min(tol_max, _TOL_SLOPE / (1.0 + _TOL_SLOPE)))


def _below(ub: torch.Tensor, tol_max: float) -> torch.Tensor:
    """Prune threshold in gamma^2 for a current best ``ub`` (gamma^2)."""
    g = torch.sqrt(ub)
    tol = ((g - 1.0).abs() * _TOL_SLOPE).clamp(min=_TOL_MIN, max=tol_max)
    return (g - tol).clamp(min=0) ** 2
