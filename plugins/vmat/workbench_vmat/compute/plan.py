"""A VMAT plan per case: arcs, control points, MLC apertures conforming to the target, MU.

Geometry (patient LPS coordinates, head-first supine, IEC 61217 gantry angles): at
gantry angle ``g`` the source sits at ``iso + SAD * (sin g, -cos g, 0)`` -- anterior at 0,
the patient's left at 90 -- and the beam runs along ``b = (-sin g, cos g, 0)``. The
beam's-eye view has the leaf-travel axis ``u = (cos g, sin g, 0)`` and the leaf-pair axis
``v = +z`` (collimator angle 0), both in millimetres at the isocentre plane. Both dose
engines read these same apertures.

The MLC is a 60-pair Millennium-like bank (10 mm outer, 5 mm central leaves over 40 cm).
Each control point's aperture is, per leaf pair, the extent of the target's divergent
projection plus a margin; on every other control point the part of the target that
overlaps the (grown) rectum is left out of the projection, which pulls the posterior
leaves in at lateral angles -- a simple stand-in for the modulation an optimiser would
give. MU weights vary smoothly along each arc.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "LEAF_WIDTHS_MM",
    "SAD_MM",
    "VMATPlan",
    "beam_axes",
    "conformal_plan",
    "leaf_edges",
    "project_points",
]

SAD_MM = 1000.0
LEAF_WIDTHS_MM = np.array([10.0] * 10 + [5.0] * 40 + [10.0] * 10)


def leaf_edges(widths: np.ndarray = LEAF_WIDTHS_MM) -> np.ndarray:
    """Leaf-pair boundaries along v (mm at the isocentre plane), centred on 0."""
    e = np.concatenate([[0.0], np.cumsum(widths)])
    return e - e[-1] / 2.0


def beam_axes(gantry_deg: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (b, u, v), each ``[..., 3]`` in patient (x, y, z), for gantry angles."""
    g = np.deg2rad(np.asarray(gantry_deg, dtype=np.float64))
    s, c = np.sin(g), np.cos(g)
    zero, one = np.zeros_like(g), np.ones_like(g)
    b = np.stack([-s, c, zero], -1)
    u = np.stack([c, s, zero], -1)
    v = np.stack([zero, zero, one], -1)
    return b, u, v


def project_points(points: np.ndarray, iso: np.ndarray, gantry_deg: float, sad: float = SAD_MM):
    """Divergent projection of patient points ``[n, 3]`` onto the isocentre plane -> (u, v)."""
    b, u, v = beam_axes(gantry_deg)
    source = iso - sad * b
    rel = points - source
    scale = sad / (rel @ b)
    return (rel @ u) * scale, (rel @ v) * scale


@dataclass
class VMATPlan:
    """Control points of one or more arcs. Each control point stands for the arc segment
    ``gantry_deg +- gantry_span_deg / 2`` and carries that segment's MU."""

    gantry_deg: np.ndarray  # [G]
    gantry_span_deg: float
    arc_index: np.ndarray  # [G] int
    mu: np.ndarray  # [G]
    leaves: np.ndarray  # [G, N, 2] (low u, high u), mm at the isocentre plane
    jaws_v: np.ndarray  # [G, 2] (low v, high v)
    jaws_u: np.ndarray  # [G, 2] (low u, high u): X jaws tracking the MLC opening
    isocenter_mm: tuple[float, float, float]
    leaf_widths: np.ndarray = field(default_factory=lambda: LEAF_WIDTHS_MM.copy())
    sad_mm: float = SAD_MM
    prescription_gy: float = 2.0
    arcs: list[tuple[float, float, str]] = field(default_factory=list)  # (start, stop, cw|ccw)

    @property
    def n_control_points(self) -> int:
        return int(len(self.gantry_deg))

    @property
    def total_mu(self) -> float:
        return float(self.mu.sum())

    def leaf_edges(self) -> np.ndarray:
        return leaf_edges(self.leaf_widths)

    def open_area_mm2(self) -> np.ndarray:
        """Open MLC area per control point (mm^2 at the isocentre plane), within the jaws."""
        e = self.leaf_edges()
        lo = np.clip(e[:-1][None, :], self.jaws_v[:, :1], self.jaws_v[:, 1:])
        hi = np.clip(e[1:][None, :], self.jaws_v[:, :1], self.jaws_v[:, 1:])
        return ((self.leaves[..., 1] - self.leaves[..., 0]) * (hi - lo)).sum(-1)

    def scaled(self, factor: float) -> "VMATPlan":
        return replace(self, mu=self.mu * float(factor))

    def to_dict(self) -> dict[str, Any]:
        return {
            "gantry_deg": self.gantry_deg.tolist(),
            "gantry_span_deg": self.gantry_span_deg,
            "arc_index": self.arc_index.tolist(),
            "mu": self.mu.tolist(),
            "leaves": np.round(self.leaves, 3).tolist(),
            "jaws_v": self.jaws_v.tolist(),
            "jaws_u": self.jaws_u.tolist(),
            "isocenter_mm": list(self.isocenter_mm),
            "leaf_widths": self.leaf_widths.tolist(),
            "sad_mm": self.sad_mm,
            "prescription_gy": self.prescription_gy,
            "arcs": [list(a) for a in self.arcs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VMATPlan":
        return cls(
            gantry_deg=np.asarray(d["gantry_deg"], float),
            gantry_span_deg=float(d["gantry_span_deg"]),
            arc_index=np.asarray(d["arc_index"], int),
            mu=np.asarray(d["mu"], float),
            leaves=np.asarray(d["leaves"], float),
            jaws_v=np.asarray(d["jaws_v"], float),
            jaws_u=np.asarray(d["jaws_u"], float),
            isocenter_mm=tuple(float(v) for v in d["isocenter_mm"]),  # type: ignore[arg-type]
            leaf_widths=np.asarray(d["leaf_widths"], float),
            sad_mm=float(d.get("sad_mm", SAD_MM)),
            prescription_gy=float(d.get("prescription_gy", 2.0)),
            arcs=[(float(a[0]), float(a[1]), str(a[2])) for a in d.get("arcs", [])],
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "VMATPlan":
        return cls.from_dict(json.loads(text))


def _arc_angles(start: float, stop: float, direction: str, spacing: float) -> np.ndarray:
    """Segment-centre angles of an arc from start to stop (degrees, 0..360)."""
    span = (stop - start) % 360.0 if direction == "cw" else (start - stop) % 360.0
    n = max(int(round(span / spacing)), 1)
    step = span / n
    offs = (np.arange(n) + 0.5) * step
    return (start + offs) % 360.0 if direction == "cw" else (start - offs) % 360.0


def _aperture(points: np.ndarray, iso: np.ndarray, gantry: float, edges: np.ndarray,
              half_voxel: float, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-leaf-pair (low, high) u of the projected points; closed pairs get low == high."""
    n = len(edges) - 1
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    if len(points):
        u, v = project_points(points, iso, gantry)
        first = np.clip(np.searchsorted(edges, v - half_voxel, side="right") - 1, 0, n - 1)
        last = np.clip(np.searchsorted(edges, v + half_voxel, side="left") - 1, 0, n - 1)
        for k in range(int((last - first).max()) + 1):
            idx = np.minimum(first + k, last)
            np.minimum.at(lo, idx, u - half_voxel)
            np.maximum.at(hi, idx, u + half_voxel)
    open_ = np.isfinite(lo)
    leaves = np.zeros((n, 2))
    leaves[open_, 0] = lo[open_] - margin
    leaves[open_, 1] = hi[open_] + margin
    if open_.any():  # park closed pairs at the middle of the open ones
        mid = 0.5 * (leaves[open_, 0].min() + leaves[open_, 1].max())
        leaves[~open_] = mid
    return leaves, open_


def conformal_plan(ptv: np.ndarray, spacing_mm: tuple[float, float, float], origin_mm: tuple[float, float, float],
                   isocenter_mm: tuple[float, float, float], *, avoid: np.ndarray | None = None,
                   n_arcs: int = 2, cp_spacing_deg: float = 4.0, margin_mm: float = 4.0,
                   seed: int = 0, prescription_gy: float = 2.0, mu_per_arc: float = 300.0) -> VMATPlan:
    """Build a conformal VMAT plan around ``ptv`` (boolean ``[z, y, x]`` mask).

    ``avoid`` (e.g. the rectum grown by a few mm) is carved out of the target projection
    on every other control point. MU are provisional (``mu_per_arc`` per arc); the cohort
    generator rescales them so that the plan delivers the prescription.
    """
    if n_arcs not in (1, 2):
        raise ValueError(f"n_arcs must be 1 or 2, got {n_arcs}")
    if not ptv.any():
        raise ValueError("empty target: cannot build apertures")
    rng = np.random.default_rng([int(seed), 0x91A])
    dz, dy, dx = spacing_mm
    x0, y0, z0 = origin_mm
    iso = np.asarray(isocenter_mm, float)

    def centres(mask: np.ndarray) -> np.ndarray:
        kz, ky, kx = np.nonzero(mask)
        return np.stack([x0 + dx * kx, y0 + dy * ky, z0 + dz * kz], -1).astype(np.float64)

    full_pts = centres(ptv)
    spared_pts = centres(ptv & ~avoid) if avoid is not None else full_pts
    if len(spared_pts) == 0:
        spared_pts = full_pts
    half_voxel = 0.5 * max(spacing_mm)
    edges = leaf_edges()
    arcs = [(181.0, 179.0, "cw"), (179.0, 181.0, "ccw")][:n_arcs]
    g_all, arc_all, mu_all, leaves_all, jv_all, ju_all = [], [], [], [], [], []
    for ai, (start, stop, direction) in enumerate(arcs):
        angles = _arc_angles(start, stop, direction, cp_spacing_deg)
        # smooth MU modulation along the arc: two random harmonics, +-30 % at most
        t = np.linspace(0.0, 2 * np.pi, len(angles), endpoint=False)
        a1, a2 = rng.uniform(0.05, 0.18, 2)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        w = 1.0 + a1 * np.sin(t + p1) + a2 * np.sin(2 * t + p2)
        for k, g in enumerate(angles):
            pts = spared_pts if (k + ai) % 2 else full_pts
            leaves, open_ = _aperture(pts, iso, float(g), edges, half_voxel, margin_mm)
            rows = np.nonzero(open_)[0]
            jv = np.array([edges[rows[0]], edges[rows[-1] + 1]]) if len(rows) else np.zeros(2)
            ju = np.array([leaves[open_, 0].min() - 5.0, leaves[open_, 1].max() + 5.0]) if len(rows) else np.zeros(2)
            g_all.append(g)
            arc_all.append(ai)
            mu_all.append(w[k])
            leaves_all.append(leaves)
            jv_all.append(jv)
            ju_all.append(ju)
    mu = np.asarray(mu_all)
    for ai in range(n_arcs):
        sel = np.asarray(arc_all) == ai
        mu[sel] *= mu_per_arc / mu[sel].sum()
    return VMATPlan(
        gantry_deg=np.asarray(g_all, float),
        gantry_span_deg=float(360.0 - 2.0) / max(int(round((360.0 - 2.0) / cp_spacing_deg)), 1),
        arc_index=np.asarray(arc_all, int),
        mu=mu,
        leaves=np.asarray(leaves_all, float),
        jaws_v=np.asarray(jv_all, float),
        jaws_u=np.asarray(ju_all, float),
        isocenter_mm=tuple(float(v) for v in iso),  # type: ignore[arg-type]
        prescription_gy=prescription_gy,
        arcs=arcs,
    )
