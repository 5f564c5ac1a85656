"""Gamma index analysis (Low et al. 1998) on torch, CPU or CUDA, in 1, 2 or 3 dimensions.

For every reference point above the low-dose cutoff, gamma is the smallest value of

    sqrt(|x - r|^2 / dta^2 + (E(x) - R(r))^2 / dd_abs^2)

over positions x of the evaluation dose E, which is interpolated (multilinear: linear in
1-D, bilinear in 2-D, trilinear in 3-D) between its grid nodes. ``dd_abs`` is ``dd``
percent of the normalisation dose (global gamma: the prescription if given, else the
reference maximum) or of the reference dose at the point (local gamma). Like
pymedphys's ``interp_fraction``, the search is discrete: the evaluation dose is examined
on a lattice aligned with its grid whose step is at most ``dta / interp_fraction`` (the
evaluation cells are halved until they are that small), and at the reference point itself.

How it is fast: a branch-and-bound search over boxes instead of a sweep over every
offset. A trilinear function on an axis-aligned box takes its extreme values at the box
corners, so for a box and a reference point a lower bound of gamma^2 is

    (distance from r to the box)^2 / dta^2 + (distance from R(r) to [min, max] of the box corners)^2 / dd_abs^2

Each reference point starts with an upper bound (gamma^2 at the point itself, capped at
``max_gamma^2``). Evaluation cells whose lower bound is not below it are dropped; the
survivors are evaluated on their 3^N half-step lattice (which lowers the upper bound),
split in 2^N children, and the children are pruned again, down to the target step. The
answer is the exact minimum over the fine lattice (points beyond ``max_gamma * dta`` can
only give gamma > ``max_gamma`` and are reported as ``max_gamma``), but only the few
boxes that can still beat the current minimum are ever refined. Everything is batched
tensors: per-point ragged candidate lists, ``scatter_reduce(amin)`` for the running minimum.
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

#: boxes handled per batch (bounds memory: ~ (N + 2^N + 3^N) floats each, times 2^N children)
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
    step is ``dta / interp_fraction``. ``max_gamma``: search radius ``max_gamma * dta``;
    larger gammas are reported as ``max_gamma``. ``device``: torch device (default: CUDA
    when available, else CPU).
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
    idx = np.nonzero(to_calc)
    if idx[0].size:
        pos = np.stack([ax_ref[a][idx[a]] for a in keep], axis=1)
        dose = ref[idx]
        dd_abs = dd / 100.0 * (dose if local else np.full_like(dose, norm))
        values = _gamma_points(
            pos,
            dose,
            1.0 / dd_abs**2,
            np.ascontiguousarray(ev.reshape([ev.shape[a] for a in keep])),
            [ax_ev[a] for a in keep],
            dta=dta,
            max_gamma=max_gamma,
            step=dta / interp_fraction,
            device=dev,
        )
        gamma_map[idx] = values
    n_eval = int(np.count_nonzero(~np.isnan(gamma_map)))
    n_pass = int(np.count_nonzero(gamma_map <= 1.0))
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
    if not np.all(np.isfinite(a)):
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
class _Tables:
    """Constant index/weight tables for N-dimensional boxes."""

    def __init__(self, ndim: int, device: torch.device, dtype: torch.dtype):
        corners = list(itertools.product((0, 1), repeat=ndim))  # 2^N, last axis fastest
        lattice = list(itertools.product((0, 1, 2), repeat=ndim))  # 3^N half steps
        # multilinear weights of each lattice point from the box corners
        w = np.zeros((len(corners), len(lattice)))
        for j, t in enumerate(lattice):
            for i, c in enumerate(corners):
                w[i, j] = np.prod([(ti / 2.0) if ci else (1 - ti / 2.0) for ti, ci in zip(t, c)])
        self.weights = torch.tensor(w, device=device, dtype=dtype)  # (2^N, 3^N)
        self.lattice_t = torch.tensor(lattice, device=device, dtype=dtype) / 2.0  # (3^N, N)
        lat_index = {t: j for j, t in enumerate(lattice)}
        child_corner = [[lat_index[tuple(ci + cc for ci, cc in zip(child, c))] for c in corners] for child in corners]
        self.child_corner = torch.tensor(child_corner, device=device)  # (2^N children, 2^N corners)
        self.child_origin = torch.tensor(corners, device=device, dtype=dtype) / 2.0  # (2^N, N)
        self.corners = torch.tensor(corners, device=device)  # (2^N, N) 0/1


def _gamma_points(pos, dose, weight, ev, axes, *, dta, max_gamma, step, device) -> np.ndarray:
    """gamma for reference points ``pos`` (P, N) with doses ``dose`` against ``ev``.

    ``weight``: 1 / dd_abs^2 per point. Returns float32 (P,), NaN where no evaluation
    dose lies within ``max_gamma * dta``.
    """
    dtype = torch.float32
    ndim = ev.ndim
    tab = _Tables(ndim, device, dtype)
    E = torch.as_tensor(ev, dtype=dtype, device=device)
    ax = [torch.as_tensor(a, dtype=dtype, device=device) for a in axes]
    shape = E.shape
    cells = [n - 1 for n in shape]
    # per-cell min/max of the corner values
    cmin = E
    cmax = E
    for a in range(ndim):
        lo = [slice(None)] * ndim
        hi = [slice(None)] * ndim
        lo[a] = slice(0, -1)
        hi[a] = slice(1, None)
        cmin = torch.minimum(cmin[tuple(lo)], cmin[tuple(hi)])
        cmax = torch.maximum(cmax[tuple(lo)], cmax[tuple(hi)])
    cmin = cmin.reshape(-1)
    cmax = cmax.reshape(-1)
    Ef = E.reshape(-1)
    e_strides = [int(np.prod(shape[a + 1 :])) for a in range(ndim)]
    c_strides = [int(np.prod(cells[a + 1 :])) for a in range(ndim)]
    corner_off = (tab.corners * torch.tensor(e_strides, device=device)).sum(1)  # (2^N,)

    h_max = max(float(np.max(np.diff(a))) for a in axes)
    levels = max(0, math.ceil(math.log2(h_max / step) - 1e-9))
    inv_dta2 = 1.0 / dta**2
    g2_cap = float(max_gamma) ** 2

    out = np.empty(len(dose), dtype=np.float32)
    chunk = 1 << 16
    for s in range(0, len(dose), chunk):
        r = torch.as_tensor(pos[s : s + chunk], dtype=dtype, device=device)
        d = torch.as_tensor(dose[s : s + chunk], dtype=dtype, device=device)
        w = torch.as_tensor(weight[s : s + chunk], dtype=dtype, device=device)
        ub = _at_point(r, d, w, Ef, ax, e_strides, tab).clamp_(max=g2_cap)
        # level-0 candidate cells, per point a box of cell indices covering sqrt(ub) * dta
        radius = torch.sqrt(ub) * dta
        lo_idx, cnt = [], []
        for a in range(ndim):
            i_lo = torch.searchsorted(ax[a][1:].contiguous(), (r[:, a] - radius).contiguous(), right=False)
            i_hi = torch.searchsorted(ax[a][:-1].contiguous(), (r[:, a] + radius).contiguous(), right=True) - 1
            lo_idx.append(i_lo)
            cnt.append((i_hi - i_lo + 1).clamp_(min=0))
        counts = cnt[0].clone()
        for a in range(1, ndim):
            counts *= cnt[a]
        # NaN where the evaluation grid is out of reach
        reach = torch.zeros_like(d)
        for a in range(ndim):
            gap = (ax[a][0] - r[:, a]).clamp(min=0) + (r[:, a] - ax[a][-1]).clamp(min=0)
            reach += gap * gap
        unreachable = reach * inv_dta2 > g2_cap * (1 + 1e-6)
        # split the points so that each batch has a bounded number of candidates
        csum = torch.cumsum(counts, 0)
        total = int(csum[-1]) if len(csum) else 0
        bounds = [0]
        if total > _MAX_CANDIDATES:
            cuts = torch.searchsorted(csum, torch.arange(_MAX_CANDIDATES, total, _MAX_CANDIDATES, device=device))
            bounds += sorted(set(int(c) for c in cuts.tolist()))
        bounds.append(len(d))
        for b0, b1 in zip(bounds[:-1], bounds[1:]):
            if b1 <= b0:
                continue
            sl = slice(b0, b1)
            boxes = _level0(
                r[sl], d[sl], w[sl], ub, b0, [x[sl] for x in lo_idx], [x[sl] for x in cnt], counts[sl],
                ax, cmin, cmax, Ef, c_strides, e_strides, corner_off, inv_dta2, tab,
            )
            if boxes is not None:
                _refine(boxes, r, d, w, ub, levels, inv_dta2, tab)
        g = torch.sqrt(ub.clamp_(max=g2_cap))
        g[unreachable] = float("nan")
        out[s : s + chunk] = g.cpu().numpy()
    return out


def _at_point(r, d, w, Ef, ax, e_strides, tab):
    """gamma^2 at distance 0: w * (E(r) - d)^2, inf where r is outside the evaluation grid."""
    ndim = r.shape[1]
    base = torch.zeros(len(r), dtype=torch.long, device=r.device)
    frac = []
    inside = torch.ones(len(r), dtype=torch.bool, device=r.device)
    for a in range(ndim):
        n = len(ax[a])
        i = torch.searchsorted(ax[a].contiguous(), r[:, a].contiguous(), right=True) - 1
        i = i.clamp_(0, n - 2)
        x0 = ax[a][i]
        f = (r[:, a] - x0) / (ax[a][i + 1] - x0)
        tol = 1e-5
        inside &= (f >= -tol) & (f <= 1 + tol)
        frac.append(f.clamp(0, 1))
        base += i * e_strides[a]
    val = torch.zeros_like(d)
    for c in range(tab.corners.shape[0]):
        wc = torch.ones_like(d)
        off = 0
        for a in range(ndim):
            bit = int(tab.corners[c, a])
            wc = wc * (frac[a] if bit else (1 - frac[a]))
            off += bit * e_strides[a]
        val += wc * Ef[base + off]
    g2 = w * (val - d) ** 2
    g2[~inside] = float("inf")
    return g2


def _level0(r, d, w, ub, offset, lo_idx, cnt, counts, ax, cmin, cmax, Ef, c_strides, e_strides, corner_off, inv_dta2, tab):
    """Candidate cells of points [offset, offset+len(r)) that can beat their bound.

    Returns boxes (pid, lo (B, N) relative to the point, size (B, N), corners (B, 2^N)).
    """
    device = r.device
    ndim = r.shape[1]
    total = int(counts.sum())
    if total == 0:
        return None
    local_pid = torch.repeat_interleave(torch.arange(len(r), device=device), counts)
    start = torch.cumsum(counts, 0) - counts
    k = torch.arange(total, device=device) - start[local_pid]
    cell = torch.zeros(total, dtype=torch.long, device=device)
    e_base = torch.zeros(total, dtype=torch.long, device=device)
    lb = torch.zeros(total, dtype=r.dtype, device=device)
    lo = []
    size = []
    for a in reversed(range(ndim)):
        c = cnt[a][local_pid]
        ia = lo_idx[a][local_pid] + k % c
        k = k // c
        cell += ia * c_strides[a]
        e_base += ia * e_strides[a]
        x0 = ax[a][ia] - r[local_pid, a]
        h = ax[a][ia + 1] - ax[a][ia]
        gap = x0.clamp(min=0) + (-(x0 + h)).clamp(min=0)
        lb += gap * gap
        lo.append(x0)
        size.append(h)
    lo = torch.stack(lo[::-1], 1)
    size = torch.stack(size[::-1], 1)
    lb *= inv_dta2
    dl = d[local_pid]
    dgap = (cmin[cell] - dl).clamp(min=0) + (dl - cmax[cell]).clamp(min=0)
    lb += w[local_pid] * dgap * dgap
    pid = local_pid + offset
    keep = lb < ub[pid]
    if not bool(keep.any()):
        return None
    pid, lo, size, e_base = pid[keep], lo[keep], size[keep], e_base[keep]
    corners = Ef[e_base[:, None] + corner_off[None, :]]
    return pid, lo, size, corners


def _refine(boxes, r, d, w, ub, levels, inv_dta2, tab):
    """Depth-first branch and bound over the boxes; lowers ``ub`` in place."""
    stack = [(0, boxes)]
    while stack:
        level, (pid, lo, size, corners) = stack.pop()
        n = len(pid)
        if n == 0:
            continue
        if n > _MAX_BOXES:
            for s in range(0, n, _MAX_BOXES):
                stack.append((level, (pid[s : s + _MAX_BOXES], lo[s : s + _MAX_BOXES], size[s : s + _MAX_BOXES], corners[s : s + _MAX_BOXES])))
            continue
        dp = d[pid]
        wp = w[pid]
        if levels == 0:
            # cells are already fine enough: their corners are the lattice
            pts = lo[:, None, :] + tab.corners.to(lo.dtype)[None] * size[:, None, :]
            g2 = (pts * pts).sum(2) * inv_dta2 + wp[:, None] * (corners - dp[:, None]) ** 2
            ub.scatter_reduce_(0, pid, g2.amin(1), reduce="amin")
            continue
        vals = corners @ tab.weights  # (B, 3^N)
        pts = lo[:, None, :] + tab.lattice_t[None] * size[:, None, :]  # (B, 3^N, N)
        g2 = (pts * pts).sum(2) * inv_dta2 + wp[:, None] * (vals - dp[:, None]) ** 2
        ub.scatter_reduce_(0, pid, g2.amin(1), reduce="amin")
        if level + 1 >= levels:
            continue
        # children
        half = size * 0.5
        c_lo = lo[:, None, :] + tab.child_origin[None] * size[:, None, :]  # (B, 2^N, N)
        c_corners = vals[:, tab.child_corner]  # (B, 2^N, 2^N)
        gap = c_lo.clamp(min=0) + (-(c_lo + half[:, None, :])).clamp(min=0)
        lb = (gap * gap).sum(2) * inv_dta2
        dgap = (c_corners.amin(2) - dp[:, None]).clamp(min=0) + (dp[:, None] - c_corners.amax(2)).clamp(min=0)
        lb += wp[:, None] * dgap * dgap
        keep = lb < ub[pid][:, None]
        if not bool(keep.any()):
            continue
        bi, ci = torch.nonzero(keep, as_tuple=True)
        stack.append((level + 1, (pid[bi], c_lo[bi, ci], half[bi], c_corners[bi, ci])))
