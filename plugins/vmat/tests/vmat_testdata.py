"""Synthetic dose distributions for the VMAT plugin's tests (no files, deterministic).

A VMAT-like dose: a high-dose ellipsoid with an erf penumbra (~3 mm), a low-dose bath
that decays away from the target, and a body outline beyond which the dose falls to
(nearly) zero. Everything scales with the grid's physical extent, so small test grids
still hold a target, a penumbra and a bath.
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

#: named perturbations of the evaluated dose
KINDS = {
    "identical": {},
    "shift": {"shift": (0.8, -0.6, 0.5)},
    "shift_large": {"shift": (1.6, 1.0, -0.4)},
    "scale": {"scale": 1.025},
    "noise": {"noise": 0.015},
    "hotspot": {"hotspot": 0.06},
    "mixed": {"shift": (0.5, 0.5, -0.3), "scale": 0.985, "noise": 0.01, "hotspot": 0.04},
}


def axes_for(shape, spacing, origin=None):
    """Coordinate vectors (mm) centred on 0 unless an origin is given."""
    out = []
    for a, (n, s) in enumerate(zip(shape, spacing)):
        o = -(n - 1) / 2 * s if origin is None else origin[a]
        out.append(o + np.arange(n) * s)
    return out


def vmat_dose(axes, *, shift=(0.0, 0.0, 0.0), scale=1.0, noise=0.0, hotspot=0.0, seed=0, extent=None):
    """Dose (Gy, max ~60) on the grid given by coordinate vectors (1 to 3 axes)."""
    ndim = len(axes)
    ext = np.array(extent if extent is not None else [a[-1] - a[0] for a in axes], dtype=float)
    grids = np.meshgrid(*axes, indexing="ij")
    c = [g - s for g, s in zip(grids, shift[-ndim:] if ndim < 3 else shift)]
    semi = np.maximum(0.28 * ext, 6.0)
    r = np.sqrt(sum((ci / si) ** 2 for ci, si in zip(c, semi)))
    sigma = 3.0 / float(np.mean(semi))  # ~3 mm penumbra
    high = 0.5 * (1 - erf((r - 1) / sigma))
    radial = np.sqrt(sum((ci / (0.35 * e)) ** 2 for ci, e in zip(c[-2:], ext[-2:])))
    bath = 0.45 * np.exp(-1.6 * radial)
    body = 0.5 * (1 - erf((np.sqrt(sum((g / (0.47 * e)) ** 2 for g, e in zip(grids[-2:], ext[-2:]))) - 1) / 0.03))
    dose = 60.0 * (0.7 * high + bath * body) * scale
    if hotspot:
        centre = 0.15 * ext
        d2 = sum((g - ce) ** 2 for g, ce in zip(grids, centre))
        dose = dose + hotspot * 60.0 * np.exp(-d2 / (2 * (0.08 * float(np.mean(ext))) ** 2))
    if noise:
        rng = np.random.default_rng(seed)
        dose = np.clip(dose + noise * 60.0 * rng.standard_normal(dose.shape), 0, None)
    return dose


def pair(shape, spacing, kind, *, seed=0, eval_axes=None):
    """(axes_ref, reference, axes_eval, evaluation) for a named perturbation ``kind``."""
    ax = axes_for(shape, spacing)
    ext = [a[-1] - a[0] for a in ax]
    ref = vmat_dose(ax, extent=ext)
    ax_e = ax if eval_axes is None else eval_axes
    ev = vmat_dose(ax_e, extent=ext, seed=seed + 1, **KINDS[kind])
    return ax, ref, ax_e, ev
