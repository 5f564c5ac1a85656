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

Everything is batched: points in chunks, boxes as tensors with one column per box
(corners and sizes (N, boxes), coefficients (2^N, boxes)), the values around points on
nodes stacked the same way, ragged candidate lists, ``scatter_reduce(amin)`` for the
running minimum. On the CPU each tensor operation costs a few microseconds however
small it is, so stacking (one operation for all axes, corners or octants) is what
makes small searches fast.
"""
from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["GammaResult", "gamma", "pass_rate"]

#: boxes handled per batch (bounds memory: ~ 2N + 2^N floats each, times 2^N children)
_MAX_BOXES = 1 << 17
#: level-0 (point, cell) candidates per batch
_MAX_CANDIDATES = 1 << 21
#: points on nodes handled per batch (at most)
_NODE_CHUNK = 1 << 16


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
    operations: more threads gain little (~20-30% with 2 on large searches, nothing on
    small ones) and, when the cores are shared with other busy processes, make each
    operation wait for a descheduled thread
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
        with torch.inference_mode():  # no autograd bookkeeping on the search's many small operations
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
    if not flat.size:
        return np.full(0, np.nan, dtype=np.float32)
    dose = ref.reshape(-1)[flat]
    dd_abs = dd_percent / 100.0 * (dose if norm is None else norm)  # per point, or one number
    todo = None
    if ev.shape == ref.shape and all(np.array_equal(ax_ref[a], ax_ev[a]) for a in keep):
        # same grid: a point whose dose difference at its own node is within the tolerance
        # of zero is settled without a search (nothing can beat it by more); done here on
        # flat indices, before any per-axis bookkeeping (on smooth doses, most points)
        g0 = np.abs(ev.reshape(-1)[flat] - dose)
        g0 /= dd_abs
        values = np.minimum(g0, max_gamma).astype(np.float32)  # the points searched below are overwritten
        todo = np.flatnonzero(g0 > _settled_below(_tol_max(step, dta)))
        if not todo.size:
            return values
        flat, dose = flat[todo], dose[todo]
        if norm is None:
            dd_abs = dd_abs[todo]
    idx = [i for a, i in enumerate(np.unravel_index(flat, ref.shape)) if a in keep]
    found = _gamma_points(
        [ax_ref[a][i] for a, i in zip(keep, idx)],
        dose,
        np.full(dose.shape, 1.0 / np.square(dd_abs)) if np.ndim(dd_abs) == 0 else 1.0 / np.square(dd_abs),
        np.ascontiguousarray(ev.reshape([ev.shape[a] for a in keep])),
        [ax_ev[a] for a in keep],
        dta=dta,
        max_gamma=max_gamma,
        step=step,
        device=device,
        nodes=_node_tables([ax_ref[a] for a in keep], [ax_ev[a] for a in keep], idx),
    )
    if todo is None:
        return found
    values[todo] = found
    return values


def _gamma_points(pos, dose, weight, ev, axes, *, dta, max_gamma, step, device, nodes) -> np.ndarray:
    """gamma for reference points at ``pos`` (N coordinate arrays (P,)) with doses ``dose`` against ``ev``.

    ``weight``: 1 / dd_abs^2 per point. ``nodes``: (node index per axis (P,), on a node
    (P,), on an interior node (P,)) from :func:`_node_tables`. Returns float32
    (P,), NaN where no evaluation dose lies within ``max_gamma * dta``.
    """
    search = _Search(ev, axes, dta=dta, max_gamma=max_gamma, step=step, device=device)
    out = np.empty(len(dose), dtype=np.float32)
    chunk = 1 << 18 if torch.device(device).type == "cpu" else 1 << 20
    as_tensor = lambda x, **k: torch.as_tensor(np.ascontiguousarray(x), device=device, **k)  # noqa: E731
    for s in range(0, len(dose), chunk):
        sl = slice(s, s + chunk)
        r = [as_tensor(x[sl], dtype=search.dtype) for x in pos]
        hint = ([as_tensor(j[sl]) for j in nodes[0]], as_tensor(nodes[1][sl]), as_tensor(nodes[2][sl]))
        sw = torch.sqrt(as_tensor(weight[sl], dtype=search.dtype))
        out[sl] = search.run(r, as_tensor(dose[sl], dtype=search.dtype), sw, hint).cpu().numpy()
    return out


def _node_tables(ax_ref, ax_ev, idx):
    """Nearest evaluation node of reference points with grid indices ``idx`` (per axis).

    Looked up once per reference coordinate, not per point: (node index per axis (P,)
    int64, on a node (P,), on an interior node (P,)): the search's fast paths.
    """
    node, on, inner = [], None, None
    for rv, x, i in zip(ax_ref, ax_ev, idx):
        j = np.clip(np.searchsorted(x, rv), 1, len(x) - 1)
        j = j - (np.abs(rv - x[j - 1]) < np.abs(x[j] - rv))
        o = np.abs(x[j] - rv) <= 1e-4
        inn = o & (j >= 1) & (j <= len(x) - 2)
        node.append(j.astype(np.int64)[i])
        if not o.all():  # (on a shared or nested grid every coordinate is on a node)
            on = o[i] if on is None else on & o[i]
        inner = inn[i] if inner is None else inner & inn[i]
    return node, np.ones(len(idx[0]), dtype=bool) if on is None else on, inner


@functools.lru_cache(maxsize=None)
def _layout(n: int) -> SimpleNamespace:
    """Index tables that depend on the number of dimensions only.

    Subsets and corners are bit masks, axis a being bit (N - 1 - a). ``signs``: corner
    values = signs @ centred coefficients. Around a node, the 3^N neighbours are rows in
    itertools.product order of their ``offsets`` in {-1, 0, 1}^N (the first axis slowest):
    ``center``, ``units`` (per axis the row of the neighbour below, then of those above),
    ``diag`` (rows two or more axes off the node). The 2^N octants around it, in
    product order of their signs ``oct_sign`` (N, octants): ``oct_corners``, the row of
    each octant's corners, corner-major, in bit order (bit set: the upper end along that
    axis).
    """
    bits = [1 << (n - 1 - a) for a in range(n)]
    subsets = range(1 << n)
    signs = np.array([[(-1.0) ** bin(S & ~corner).count("1") for S in subsets] for corner in subsets])
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=n))).reshape(-1, n)
    center = len(offsets) // 2
    octants = list(itertools.product((-1, 1), repeat=n))
    row = {tuple(o): k for k, o in enumerate(offsets.tolist())}
    # corner (bit order) -> upper end (1) or not (0) per axis
    corners = np.array([[1 if cc & b else 0 for b in bits] for cc in subsets]).reshape(-1, n)
    # the slope of q along axis a (xi units) is multilinear in the other axes: its values
    # at their 2^(N-1) corners, from the coefficients (rows: axis-major)
    slope_corners = np.array([
        [(-1.0) ** bin(S & ~cc & ~bits[a]).count("1") if S & bits[a] else 0.0 for S in subsets]
        for a in range(n) for cc in subsets if not cc & bits[a]
    ])
    # pairs of axes: the terms holding both, and the axes in each pair
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n)], dtype=np.int64).reshape(-1, 2)
    return SimpleNamespace(
        nonlinear=[S for S in subsets if S & (S - 1)],
        is_nonlinear=np.array([1.0 if S & (S - 1) else 0.0 for S in subsets]),
        signs=signs,
        corners=corners,
        slope_corners=slope_corners,
        pairs=pairs,
        pair_terms=np.array([[1.0 if S & bits[a] and S & bits[b] else 0.0 for S in subsets] for a, b in pairs]).reshape(-1, 1 << n),
        pair_rows=np.array([[1.0 if a in p else 0.0 for p in pairs.tolist()] for a in range(n)]).reshape(n, -1),
        offsets=offsets,
        center=center,
        units=[center + s * 3 ** (n - 1 - a) for s in (-1, 1) for a in range(n)],
        diag=[k for k, o in enumerate(offsets.tolist()) if sum(1 for x in o if x) >= 2],
        oct_sign=np.array([[float(sgn[a]) for sgn in octants] for a in range(n)]),
        oct_corners=[row[tuple(max(sa, 0) if cc & bits[a] else min(sa, 0) for a, sa in enumerate(sgn))]
                     for cc in subsets for sgn in octants],
    )


class _Search:
    """Branch-and-bound search of min gamma^2, batched over reference points.

    Inside, everything is in gamma units, per point: positions relative to the point
    divided by dta (``y``), doses as (E - R(r)) / dd_abs (``q``), so gamma^2 = |y|^2 + q^2.
    Boxes are batched as tensors with one column per box: lower corner ``lo`` and size
    ``h`` (N, boxes), and the centred multilinear coefficients ``c`` of the dose (2^N,
    boxes): q(xi) = sum_S c[S] prod_{a in S} xi_a with xi in [-1, 1]^N over the box.
    Subset S is a bit mask, axis a being bit (N - 1 - a).
    """

    dtype = torch.float32

    def __init__(self, ev: np.ndarray, axes, *, dta, max_gamma, step, device):
        n = ev.ndim
        self.n, self.dta, self.device = n, float(dta), device
        self.g2_cap = float(max_gamma) ** 2
        # on the CPU the dose is read in place (float64) and converted where gathered while
        # the search reads a small part of the grid (see _dose)
        if torch.device(device).type == "cpu":
            E = torch.as_tensor(ev if ev.flags.writeable else ev.copy(), device=device)  # (torch warns on read-only arrays)
        else:
            E = torch.as_tensor(ev, dtype=self.dtype, device=device)
        self.ax = [torch.as_tensor(a, dtype=self.dtype, device=device).contiguous() for a in axes]
        self.ax_next = [a[1:].contiguous() for a in self.ax]
        self.ax_prev = [a[:-1].contiguous() for a in self.ax]
        self.e_strides = [int(np.prod(ev.shape[a + 1 :])) for a in range(n)]
        cells = [m - 1 for m in ev.shape]
        self.c_strides = [int(np.prod(cells[a + 1 :])) for a in range(n)]
        self.shape = tuple(ev.shape)
        self._crange = None  # per-cell dose range, built on first use (general points only)
        self.E = E.reshape(-1)
        self.hstep = [((a[1:] - a[:-1]) / self.dta).contiguous() for a in self.ax]  # cell sizes, y units
        self.step = float(step) / self.dta  # boxes are not split below this size (y units)
        self.tol_max = _tol_max(step, dta)  # see _TOL_MIN
        lay = _layout(n)
        self.nonlinear = lay.nonlinear  # subsets of two or more axes
        flt = dict(dtype=self.dtype, device=device)
        lng = dict(dtype=torch.long, device=device)
        # boxes: corner values <-> coefficients, and the coefficient rows of single axes
        self.to_corners = torch.as_tensor(lay.signs, **flt)
        self.to_coef = torch.as_tensor(lay.signs.T / (1 << n), **flt)
        self.axis_bits = torch.as_tensor([1 << (n - 1 - a) for a in range(n)], **lng)
        self.corner_off = torch.as_tensor(lay.corners @ np.array(self.e_strides), **lng)[:, None]  # flat, per corner
        self.to_corners_nl = torch.as_tensor(lay.signs * lay.is_nonlinear, **flt)  # the nonlinear terms only
        self.slope_corners = torch.as_tensor(lay.slope_corners, **flt)
        self.pair_terms = torch.as_tensor(lay.pair_terms, **flt)
        self.pair_a = torch.as_tensor(lay.pairs[:, 0], **lng)
        self.pair_b = torch.as_tensor(lay.pairs[:, 1], **lng)
        self.pair_rows = torch.as_tensor(lay.pair_rows, **flt)
        # points on nodes (see _on_node and _layout)
        # (int32 where the grid allows: half the memory traffic of the (3^N, P) gather index)
        self.index_dtype = torch.int32 if ev.size < 2**31 else torch.long
        self.stencil = torch.as_tensor(lay.offsets @ np.array(self.e_strides), dtype=self.index_dtype, device=device)[:, None]
        self.center = lay.center
        self.units = torch.as_tensor(lay.units, **lng)
        self.h_cat = torch.cat(self.hstep)  # the cell sizes of all axes in one vector
        starts = np.cumsum([0] + [len(x) for x in self.hstep[:-1]])
        self.h_off = torch.as_tensor(np.stack([starts - 1, starts])[:, :, None], **lng)  # hm, hp of node j: j + h_off
        self.diag = torch.as_tensor(lay.diag, **lng)
        self.diag_m = torch.as_tensor(lay.offsets[lay.diag] < 0, **flt)
        self.diag_p = torch.as_tensor(lay.offsets[lay.diag] > 0, **flt)
        self.oct_corners = torch.as_tensor(lay.oct_corners, **lng)
        self.oct_sign = torch.as_tensor(lay.oct_sign, **flt)
        self.oct_lo = torch.as_tensor(np.minimum(lay.oct_sign, 0), **flt)
        self.zero = torch.zeros((), **flt)

    def _below(self, ub):
        return _below(ub, self.tol_max)

    def _flat(self, idx):
        """Flat node index of per-axis node indices."""
        out = idx[0] * self.e_strides[0]
        for a in range(1, self.n):
            out = out + idx[a] * self.e_strides[a]
        return out

    def _dose(self, flat):
        """Evaluation dose (float32) at flat node indices (None: all).

        Gathering from float64 costs ~2.4 ns more per value than from float32, converting
        the grid ~0.85 ns per node: the grid is converted (once) by the first gather of
        more than a third of its size.
        """
        if self.E.dtype != self.dtype and (flat is None or 3 * len(flat) > len(self.E)):
            self.E = self.E.to(self.dtype)
        return self.E if flat is None else self.E.index_select(0, flat).to(self.dtype)

    def _cell_range(self):
        """Least and greatest evaluation dose of each cell (flat, cell order)."""
        if self._crange is None:
            n = self.n
            cmin = cmax = self._dose(None).view(self.shape)
            for a in range(n):
                lo = [slice(None)] * n
                hi = [slice(None)] * n
                lo[a], hi[a] = slice(0, -1), slice(1, None)
                cmin = torch.minimum(cmin[tuple(lo)], cmin[tuple(hi)])
                cmax = torch.maximum(cmax[tuple(lo)], cmax[tuple(hi)])
            self._crange = (cmin.reshape(-1), cmax.reshape(-1))
        return self._crange

    # -- driver --------------------------------------------------------------------------
    def run(self, r: list, d: torch.Tensor, sw: torch.Tensor, nodes) -> torch.Tensor:
        """gamma of points at ``r`` (per axis) with doses ``d`` and 1 / dd_abs ``sw``; ``nodes``
        from :func:`_node_tables`."""
        n, dta = self.n, self.dta
        P = len(d)
        ub = torch.full((P,), self.g2_cap, dtype=self.dtype, device=self.device)
        done = torch.zeros(P, dtype=torch.bool, device=self.device)
        node, on_any, interior = nodes
        # points on a boundary node whose dose difference there is already within the
        # tolerance of zero need no search (nothing can beat it by more than the tolerance);
        # _on_node makes the same test, and more, on interior nodes
        sel = torch.nonzero(on_any & ~interior).squeeze(1)
        if len(sel):
            q0 = (self._dose(self._flat([x.index_select(0, sel) for x in node])) - d.index_select(0, sel)) * sw.index_select(0, sel)
            q2 = torch.clamp(q0 * q0, max=self.g2_cap)
            ub.index_copy_(0, sel, q2)
            done.index_fill_(0, sel.masked_select(self._below(q2) <= 0), True)
        # boxes both searches leave (clipped, not yet evaluated) are refined together at the
        # end: one branch and bound instead of two, each of whose levels costs a few hundred
        # tensor operations however few boxes it holds
        deferred = []
        inner = torch.nonzero(interior).squeeze(1)
        chunks = -(-len(inner) // _NODE_CHUNK)
        for sel in inner.tensor_split(chunks) if chunks else ():
            # in even chunks: its stacked temporaries (~100 floats a point) stay small
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
            cat = lambda k: torch.cat([b[k] for b in deferred], dim=-1)  # noqa: E731
            self._refine(cat(0), cat(1), cat(2), cat(3), ub, clipped=True)
        # NaN where the evaluation grid is out of reach (points on nodes are on it)
        g = torch.sqrt(ub.clamp_(min=0, max=self.g2_cap))
        off = torch.nonzero(~on_any).squeeze(1)
        if len(off):
            reach = torch.zeros(len(off), dtype=self.dtype, device=self.device)
            for a in range(n):
                ra = r[a].index_select(0, off)
                gap = (self.ax[a][0] - ra).clamp(min=0) + (ra - self.ax[a][-1]).clamp(min=0)
                reach += gap * gap
            g.index_fill_(0, off.masked_select(reach / dta**2 > self.g2_cap * (1 + 1e-6)), float("nan"))
        return g

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
            xi = 2 * (-lo) / h - 1
            inside = ((xi >= -1 - 1e-5) & (xi <= 1 + 1e-5)).all(0)
            q0 = self._multilinear(c, xi.clamp(-1, 1))
            ub = torch.where(inside, torch.minimum(ub, q0 * q0), ub)
            _, cand, _ = self._evaluate(lo, h, c)
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

        Everything per point is stacked: neighbour values (3^N, P), per-axis values (N, P),
        octants (2^N, P), so each step is one tensor operation whatever N is.
        """
        n, P = self.n, len(d)
        V = (self._dose((self._flat(node).to(self.index_dtype) + self.stencil).reshape(-1)).view(-1, P) - d) * sw  # (3^N, P)
        H = self.h_cat.index_select(0, (torch.stack(node) + self.h_off).reshape(-1)).view(2, n, P)
        hm, hp = H[0], H[1]  # cell sizes below and above the node, per axis
        q0 = V[self.center]
        Vu = V.index_select(0, self.units).view(2, n, P)  # unit neighbours: [0] below, [1] above
        g = (Vu[1] - Vu[0]) / (hm + hp)
        t = _newton(q0, g, -hm, hp)
        y = _clamp_step(t, g, -hm, hp)
        qy = _separable(V.view((3,) * n + (P,)), y, hm, hp)
        ub = torch.minimum(torch.minimum(q0 * q0, _norm2(y) + qy * qy), torch.full_like(q0, self.g2_cap))
        # more attained values, exact and cheap: the best point on each of the 2N edges from
        # the node (the dose is linear there) and the other neighbour nodes
        s = (Vu - q0) / H
        ta = torch.minimum((-q0 * s / (1.0 + s * s)).clamp(min=0), H)
        qa = q0 + s * ta
        ub = torch.minimum(ub, (ta * ta + qa * qa).view(2 * n, P).amin(0))
        # (the diagonal neighbours only where they are near enough to matter)
        hmin = torch.minimum(hm.amin(0), hp.amin(0))
        far = torch.nonzero(ub > 2.0 * hmin * hmin).squeeze(1) if n > 1 else hmin[:0].long()
        if len(far):
            dist = self.diag_m @ (hm * hm).index_select(1, far) + self.diag_p @ (hp * hp).index_select(1, far)
            vd = V.index_select(0, self.diag).index_select(1, far)
            ub.index_copy_(0, far, torch.minimum(ub.index_select(0, far), (dist + vd * vd).amin(0)))
        # a point whose value at the node is within the tolerance of zero keeps that value,
        # as when _values_at settles it on a shared grid (the same result either way)
        q2 = torch.clamp(q0 * q0, max=self.g2_cap)
        ub = torch.where(self._below(q2) <= 0, q2, ub)
        rho = torch.sqrt(ub)
        # nothing beyond |y| = sqrt(self._below(ub)) can beat ub by more than the tolerance
        below = self._below(ub)
        reach = torch.sqrt(below)
        settled = below <= 0  # within the tolerance of zero: nothing can do better by more
        fits = ~settled & (rho < 0.999 * hmin)
        # the dose over the cube [-reach, reach]^N left to search, at {-reach, 0, reach}^N:
        # in each octant of the cube a box within one cell, so multilinear (exact)
        W = _lerp_cube(V.view((3,) * n + (P,)), reach, hm, hp)
        # cheapest certificate first. Take the dose's sign so that it is >= 0 at the node
        # (fw); moving away from the node along an axis, fw never falls faster than the
        # least slope K_a of the cube's edges parallel to that axis (in an octant the
        # slope along an axis is a mean of its parallel edges' slopes). So over the cube
        # gamma^2 >= |y|^2 + (|q0| + sum_a K_a |y_a|)_+^2: a convex problem on [0, reach]^N
        flip = _sign(q0)
        fw = W * flip
        ks = torch.stack([
            (torch.minimum(fw.narrow(a, 0, 1), fw.narrow(a, 2, 1)) - fw.narrow(a, 1, 1)).reshape(-1, P).amin(0)
            for a in range(n)
        ]) / reach
        alpha = q0.abs()
        t = _newton(alpha, ks, self.zero, reach).clamp(min=0)
        quick = fits & (_dual_bound(alpha, ks, None, self.zero, reach, t) >= below)
        cert = settled | quick
        fits = fits & ~quick
        sel = torch.nonzero(fits).squeeze(1)
        if len(sel) == 0:
            return ub, cert
        # octant by octant: first the same certificate with the slopes of that octant only;
        # the octants it leaves open are searched by branch and bound
        m, no = len(sel), 1 << n
        rho_s = reach.index_select(0, sel)
        ub_s = ub.index_select(0, sel)
        alpha = alpha.index_select(0, sel)
        C = W.view(-1, P).index_select(1, sel).index_select(0, self.oct_corners).view((2,) * n + (no, m))  # corner, octant, point
        Cf = C * flip.index_select(0, sel)
        ks = torch.stack([  # per axis: the least slope away from the node in each octant (octant, point)
            ((Cf.narrow(a, 1, 1) - Cf.narrow(a, 0, 1)) * self.oct_sign[a][:, None]).reshape(-1, no, m).amin(0)
            for a in range(n)
        ]) / rho_s
        t = _newton(alpha, ks, self.zero, rho_s).clamp(min=0)
        still = torch.nonzero((_dual_bound(alpha, ks, None, self.zero, rho_s, t) < self._below(ub_s)).reshape(-1)).squeeze(1)
        if len(still):
            # boxes of the open octants, octant by octant (pid: index into sel)
            k = torch.div(still, m, rounding_mode="floor")
            pid = still - k * m
            rho_k = rho_s.index_select(0, pid)
            cs = self.to_coef @ C.reshape(no, no * m).index_select(1, still)
            los = self.oct_lo.index_select(1, k) * rho_k
            hs = rho_k.expand(n, -1)
            if len(pid) <= _MAX_BOXES >> 3:
                # few: the caller refines them with its own boxes (pid: index into d); many:
                # evaluating all before opening any (below) lowers ub first, which pays
                later.append((sel.index_select(0, pid), los, hs, cs))
            else:
                later += [(sel.index_select(0, b[0]), *b[1:]) for b in self._evaluate_then_split(pid, los, hs, cs, ub_s)]
        ub.index_copy_(0, sel, ub_s)
        cert.index_fill_(0, sel, True)
        return ub, cert

    def _evaluate_then_split(self, pid, lo, h, c, ub):
        """Every box evaluated (lowering ``ub``) before any is opened, in batches small
        enough for the caches; yields the open ones' children (clipped, not yet evaluated)."""
        lbs, ys = [], []
        for b in range(0, len(pid), _MAX_BOXES):
            sl = slice(b, b + _MAX_BOXES)
            lb, cand, y = self._evaluate(lo[:, sl], h[:, sl], c[:, sl])
            ub.scatter_reduce_(0, pid[sl], cand, reduce="amin")
            lbs.append(lb)
            ys.append(y)
        lb, y = torch.cat(lbs), torch.cat(ys, dim=1)
        for b in range(0, len(pid), _MAX_BOXES):
            sl = slice(b, b + _MAX_BOXES)
            boxes = (pid[sl], lo[:, sl], h[:, sl], c[:, sl])
            open_ = self._open(*boxes, lb[sl], ub, y=y[:, sl])
            if len(open_):
                yield from self._split(*_take(open_, *boxes), ub)

    def _cells(self, idx, pid, r, d, sw):
        """Boxes (lo, h, coefficients) of cells with multi-index ``idx`` seen from points ``pid``."""
        n, dta = self.n, self.dta
        lo, h = [], []
        for a in range(n):
            x0 = self.ax[a].index_select(0, idx[a])
            x1 = self.ax_next[a].index_select(0, idx[a])
            lo.append((x0 - r[a].index_select(0, pid)) / dta)
            h.append((x1 - x0) / dta)
        c = self.to_coef @ self._dose((self._flat(idx) + self.corner_off).reshape(-1)).view(1 << n, -1)
        c[0] -= d.index_select(0, pid)
        return torch.stack(lo), torch.stack(h), c * sw.index_select(0, pid)

    def _corner_bound(self, lo, h, c):
        """Lower bound of gamma^2 over each box: squared distance plus the least |q| at its corners."""
        v = self.to_corners @ c  # (2^N, boxes): q at the corners
        gap = v.amin(0).clamp(min=0) - v.amax(0).clamp(max=0)
        da = lo.clamp(min=0) + (-(lo + h)).clamp(min=0)
        return gap * gap + (da * da).sum(0)

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
        thr = self._below(ub.index_select(0, pid))
        keep = torch.nonzero(lb < thr).squeeze(1)
        if len(keep) == 0:
            return
        pid = pid.index_select(0, keep)
        idx = [ia.index_select(0, keep) for ia in idx]
        lo, h, c = self._cells(idx, pid, r, d, sw)
        if len(pid) <= _MAX_BOXES:
            later.append((pid, *self._clip(lo, h, c, torch.sqrt(thr.index_select(0, keep)))))
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
                    stack.append((pid[sl], lo[:, sl], h[:, sl], c[:, sl], clipped))
                continue
            if not clipped:
                lo, h, c = self._clip(lo, h, c, torch.sqrt(self._below(ub.index_select(0, pid))))
            # a cheap test first: distance to the box and the dose range at its corners
            near = self._corner_bound(lo, h, c) < self._below(ub.index_select(0, pid))
            if not bool(near.all()):
                keep = torch.nonzero(near).squeeze(1)
                if len(keep) == 0:
                    continue
                pid, lo, h, c = _take(keep, pid, lo, h, c)
                m = len(pid)
            lb, cand, y = self._evaluate(lo, h, c)
            ub.scatter_reduce_(0, pid, cand, reduce="amin")
            keep = self._open(pid, lo, h, c, lb, ub, (h > self.step).any(0), y)
            if len(keep) == 0:
                continue
            if len(keep) < m:
                pid, lo, h, c = _take(keep, pid, lo, h, c)
            for child in self._children_chunks(pid, lo, h, c, ub):
                stack.append((*child, True))

    def _split(self, pid, lo, h, c, ub):
        """Children (clipped, in chunks) of the boxes still larger than the search step."""
        keep = torch.nonzero((h > self.step).any(0)).squeeze(1)
        if len(keep):
            yield from self._children_chunks(*_take(keep, pid, lo, h, c), ub)

    def _children_chunks(self, pid, lo, h, c, ub):
        """:meth:`_children` of at most ``_MAX_BOXES >> N`` parents at a time.

        Bounded batches keep every temporary small enough for the CPU caches: splitting
        2.6 M children at once ran ~8x slower per child than batches of 1 M (memory
        traffic and fresh page mappings for each large temporary).
        """
        step = max(1, _MAX_BOXES >> self.n)
        for s in range(0, len(pid), step):
            sl = slice(s, s + step)
            child = self._children(pid[sl], lo[:, sl], h[:, sl], c[:, sl], ub)
            if child is not None:
                yield child

    def _children(self, pid, lo, h, c, ub):
        """Split boxes in 2^N halves; keep the children near enough to beat ``ub``."""
        n, m = self.n, len(pid)
        half = h * 0.5
        # squared distance from the point to each child: sum over axes of lower/upper half
        ends = torch.stack([lo, lo + half])  # (2, N, m)
        gap = ends.clamp(min=0) + (-(ends + half)).clamp(min=0)
        gap = gap * gap
        dist = None
        for a in range(n):
            x = gap[:, a].reshape((1,) * a + (2,) + (1,) * (n - 1 - a) + (m,))
            dist = x if dist is None else dist + x
        dist = dist.reshape(1 << n, m)  # child index bits: axis a is bit (N - 1 - a)
        thr = self._below(ub.index_select(0, pid))
        keep = torch.nonzero((dist < thr[None, :]).reshape(-1)).squeeze(1)
        if len(keep) == 0:
            return None
        ci = torch.div(keep, m, rounding_mode="floor")
        bi = keep - ci * m
        pid = pid.index_select(0, bi)
        rho = torch.sqrt(thr.index_select(0, bi))
        # the child's extent per axis (lower or upper half), clipped to [-rho, rho]
        up = ((ci & self.axis_bits[:, None]) != 0).to(self.dtype)  # (N, children)
        la, ha = lo.index_select(1, bi), h.index_select(1, bi)
        a0 = la + up * (0.5 * ha)
        new_lo = torch.maximum(a0, -rho)
        new_hi = torch.maximum(torch.minimum(a0 + 0.5 * ha, rho), new_lo)
        inv = 1.0 / ha
        c = self._substitute(c.index_select(1, bi), (new_lo + new_hi - 2.0 * la) * inv - 1.0, (new_hi - new_lo) * inv)
        return pid, new_lo, (new_hi - new_lo).clamp(min=1e-12), c

    def _clip(self, lo, h, c, rho):
        """Shrink boxes to the cube [-rho, rho]^N (nothing outside can beat gamma = rho)."""
        new_lo = torch.maximum(lo, -rho)
        new_hi = torch.maximum(torch.minimum(lo + h, rho), new_lo)
        inv = 1.0 / h
        # new centre and half width, in the old xi units
        c = self._substitute(c.clone(), (new_lo + new_hi - 2.0 * lo) * inv - 1.0, (new_hi - new_lo) * inv)
        return new_lo, (new_hi - new_lo).clamp(min=1e-12), c

    def _substitute(self, c, mid, scl):
        """Coefficients over a sub-box: xi_a = mid_a + scl_a xi'_a on every axis (in place on ``c``)."""
        cv = c.view((2,) * self.n + (-1,))  # one dimension per axis: the subset lacks / holds it
        for a in range(self.n):
            with_a = cv.select(a, 1)
            cv.select(a, 0).addcmul_(mid[a], with_a)
            with_a.mul_(scl[a])
        return c

    # -- one box -------------------------------------------------------------------------
    def _multilinear(self, c, xi):
        """q(xi) from centred coefficients (xi: N rows)."""
        cur = c.view((2,) * self.n + (-1,))
        for a in range(self.n):
            cur = cur[0] + cur[1] * xi[a]
        return cur

    def _partial(self, c, xi, a):
        """dq/dxi_a at ``xi`` (the coefficient of xi_a, a multilinear function of the others)."""
        cur = c.view((2,) * self.n + (-1,)).select(a, 1)
        for b in range(self.n):
            if b != a:
                cur = cur[0] + cur[1] * xi[b]
        return cur

    def _linear_model(self, lo, h, c):
        """(alpha, g, hi): the box's dose without its nonlinear terms is alpha + g.y (y units)."""
        cb = c.index_select(0, self.axis_bits)  # coefficients of the single axes
        return c[0] - (cb * (2.0 * lo / h + 1.0)).sum(0), 2.0 * cb / h, lo + h

    def _evaluate(self, lo, h, c):
        """Lower bound of gamma^2 over each box, gamma^2 at a good point of the box, that point.

        The dose is its linear part alpha + g.y plus a remainder (the nonlinear terms)
        whose range over the box is that over its corners. The point is (nearly) the
        minimiser of |y|^2 + (alpha + g.y)^2 over the box, found by Newton steps on its
        scalar dual; the true dose is evaluated there. The bound is the Lagrangian dual of
        the problem with the dose free to move within the remainder's range, at the
        multiplier from those steps (any multiplier gives a valid bound).
        """
        alpha, g, hi = self._linear_model(lo, h, c)
        # range of the nonlinear remainder: a multilinear function, extreme at the corners
        rem = None
        if self.nonlinear:
            v = self.to_corners_nl @ c
            rem = (v.amin(0), v.amax(0))
        t = _newton(alpha, g, lo, hi)
        y = _clamp_step(t, g, lo, hi)
        q = self._multilinear(c, (2.0 * (y - lo) / h - 1.0).clamp(-1, 1))
        return _dual_bound(alpha, g, rem, lo, hi, t), _norm2(y) + q * q, y

    def _slope_bound(self, lo, h, c):
        """Second lower bound of gamma^2 over each box, tight near the corner nearest the point.

        From that corner y0, q(y) >= q(y0) + sum_a k_a (y_a - y0_a) with k_a the least slope
        of q along a over the box (moving away from y0: the signs of y_a - y0_a are fixed);
        the slope of a multilinear q along a is a multilinear function of the other
        coordinates, extreme at their corners. So gamma^2 >= |y|^2 + (that linear
        function)_+^2 (for q(y0) >= 0; the mirror image otherwise), whose dual bound is
        taken at any multiplier >= 0. Unlike the centred bound its error vanishes at y0,
        where the minimum often lies (at the reference point, on a face of the search cube).
        """
        n = self.n
        hi = lo + h
        # anchor corner: per axis the end nearer to 0 (upper end: up = 1)
        up = (hi < -lo).to(self.dtype)
        q0 = self._multilinear(c, up * 2.0 - 1.0)
        flip = _sign(q0)
        # slopes of flip * q along each axis (xi units) at the corners of the other axes;
        # moving away from the anchor: towards +y the least counts, towards -y the greatest
        v = (self.slope_corners @ c).view(n, -1, len(q0)) * flip
        kmin, kmax = v.amin(1), v.amax(1)
        k = (kmin + up * (kmax - kmin)) * (2.0 / h)
        alpha = q0 * flip - (k * (lo + up * h)).sum(0)
        t = _newton(alpha, k, lo, hi).clamp(min=0)
        return _dual_bound(alpha, k, None, lo, hi, t)

    def _convex_bound(self, lo, h, c, y=None):
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
        leave open (measured: ~80 % of the octants around nodes). ``y``: that minimiser
        when known (from :meth:`_evaluate`; overwritten).
        """
        n = self.n
        hi = lo + h
        if y is None:
            alpha, g, _ = self._linear_model(lo, h, c)
            y = _clamp_step(_newton(alpha, g, lo, hi), g, lo, hi)
        inv_h = 1.0 / h
        # Gershgorin: row sums of |mixed second derivatives| (y units) over the box
        mixed = (self.pair_terms @ c.abs()) * (4.0 * inv_h.index_select(0, self.pair_a) * inv_h.index_select(0, self.pair_b))
        rows = self.pair_rows @ mixed
        xi = (2.0 * (y - lo) * inv_h - 1.0).clamp(-1, 1)
        lam = self._multilinear(c, xi)
        al = (lam.abs() * rows - 1.0).clamp(min=0)
        mid = lo + hi
        for a in range(n):  # one sweep of exact coordinate minimisation (rows of y, xi in place)
            slope = 4.0 * lam * self._partial(c, xi, a) * inv_h[a]
            y[a] = torch.minimum(torch.maximum((al[a] * mid[a] - slope) / (2.0 * (1.0 + al[a])), lo[a]), hi[a])
            xi[a] = (2.0 * (y[a] - lo[a]) * inv_h[a] - 1.0).clamp(-1, 1)
        lb = 2.0 * lam * self._multilinear(c, xi) - lam * lam
        grad = 2.0 * (1.0 + al) * y - al * mid + 4.0 * lam * torch.stack([self._partial(c, xi, a) for a in range(n)]) * inv_h
        return lb + (y * y + al * (y - lo) * (y - hi) + torch.minimum(grad * (lo - y), grad * (hi - y))).sum(0)

    def _open(self, pid, lo, h, c, lb, ub, mask=None, y=None):
        """Indices of boxes (among ``mask``) that may beat ``ub`` by more than the tolerance.

        The centred bound ``lb`` is tested first, then the convex bound where it failed
        (on noisy doses it closes ~80 % of those boxes, the slope bound ~40 %), then the
        slope bound on the few left (it closes some the convex one cannot).
        """
        thr = self._below(ub.index_select(0, pid))
        keep = torch.nonzero(lb < thr if mask is None else (lb < thr) & mask).squeeze(1)
        if len(keep) == 0 or not self.nonlinear:
            return keep
        _, lo, h, c = _take(keep, None, lo, h, c)
        thr = thr.index_select(0, keep)
        still = torch.nonzero(~(self._convex_bound(lo, h, c, None if y is None else y.index_select(1, keep)) >= thr)).squeeze(1)  # NaN: open
        if len(still) == 0:
            return still
        keep = keep.index_select(0, still)
        lb3 = self._slope_bound(*_take(still, None, lo, h, c)[1:])
        return keep.masked_select(lb3 < thr.index_select(0, still))


def _take(keep, pid, lo, h, c):
    """The boxes ``keep`` of (pid, lo, h, c) (pid may be None)."""
    return (None if pid is None else pid.index_select(0, keep), lo.index_select(1, keep), h.index_select(1, keep),
            c.index_select(1, keep))


def _sign(x):
    """+1 where x >= 0 (or +0.0), else -1 (torch.where is ~25x slower than arithmetic on CPU)."""
    return torch.ones_like(x).copysign_(x)


def _norm2(y):
    """|y|^2 of vectors stacked along the first dimension."""
    return (y * y).sum(0)


def _clamp_step(t, g, lo, hi):
    return torch.minimum(torch.maximum(-t * g, lo), hi)


def _newton(alpha, g, lo, hi):
    """Residual t of min over the box [lo, hi] of |y|^2 + (alpha + g.y)^2 (approximately).

    ``g`` stacks the axes along its first dimension; ``lo`` and ``hi`` broadcast to it. At
    the optimum y = clamp(-t g, lo, hi) and t = alpha + g . y: Newton steps on that scalar
    equation from the unconstrained solution.
    """
    g2 = g * g
    t = alpha / (1.0 + g2.sum(0))
    for _ in range(_NEWTON):
        z = -t * g
        y = torch.minimum(torch.maximum(z, lo), hi)
        s = alpha + (g * y).sum(0)
        t = t - (t - s) / ((g2 * (y == z)).sum(0) + 1.0)
    return t


def _dual_bound(alpha, g, rem, lo, hi, t):
    """Lower bound of min over the box of |y|^2 + (alpha + g.y + e)^2 over e in [rlo, rhi].

    Lagrangian dual: for any multiplier lam, sum_a min_{y_a} (y_a^2 + 2 lam g_a y_a) +
    2 lam alpha + 2 min(lam rlo, lam rhi) - lam^2 is below it; lam is the Newton residual
    moved into the remainder's range. Never below the squared distance to the box.
    (Axes stacked along the first dimension of ``g``; ``lo``, ``hi`` broadcast to it.)
    """
    if rem is None:
        lam = t
        lb = 2.0 * lam * alpha - lam * lam
    else:
        rlo, rhi = rem
        lam = (t - rhi).clamp(min=0) + (t - rlo).clamp(max=0)
        lb = 2.0 * lam * alpha - lam * lam + 2.0 * torch.minimum(lam * rlo, lam * rhi)
    y = torch.minimum(torch.maximum(-lam * g, lo), hi)
    lb = lb + (y * (y + 2.0 * lam * g)).sum(0)
    y0 = torch.minimum(lo.clamp(min=0), hi).expand(g.shape)
    return torch.maximum(lb, (y0 * y0).sum(0))


def _separable(v, y, hm, hp):
    """Dose at offsets ``y`` (N, P) from values ``v`` (3, ..., 3, P) at {-hm, 0, hp}^N (multilinear per piece)."""
    cur = v
    for a in range(len(y)):
        up = (y[a] >= 0).to(y.dtype)
        f = y[a].abs() / (hm[a] + up * (hp[a] - hm[a]))
        cur = torch.lerp(cur[1], torch.lerp(cur[0], cur[2], up), f)
    return cur


def _lerp_cube(v, rho, hm, hp):
    """Values at {-rho, 0, rho}^N from values ``v`` (3, ..., 3, P) at {-hm, 0, hp}^N (piecewise multilinear)."""
    out = v.clone()
    for a in range(len(hm)):
        mid = out.narrow(a, 1, 1)
        for end, h in ((0, hm[a]), (2, hp[a])):
            side = out.narrow(a, end, 1)
            side.copy_(torch.lerp(mid, side, rho / h))
    return out


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
