"""Cumulative dose-volume histograms and the dose statistics read from them (D95, D2, Dmean).

A structure is a boolean mask on the dose grid (``[z, y, x]``). Its volume is sampled at
voxel centres: each voxel in the mask contributes its volume and its dose. With
``supersample=k`` each voxel is split into ``k^3`` sub-voxels; the dose is interpolated
trilinearly at their centres and the mask's 0/1 values are interpolated too and
thresholded at 0.5, so a curved boundary is followed more closely than by whole voxels.

``D_x`` is the dose that at least ``x`` % of the structure's volume receives. The samples
sorted from hot to cold each stand for an equal share of the volume; the i-th (0-based) is
placed at the middle of its share, (i + 0.5) / n, and D_x is read by linear interpolation
between neighbouring samples (so D50 of two voxels at 1 and 3 Gy is 2 Gy; beyond the
first or last middle it is the maximum or minimum). D2 is a near-maximum, D98 a near-minimum, D95 the usual target coverage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["DVH", "cumulative_dvh", "dose_at_volume", "mean_dose", "volume_at_dose", "dvh_metrics"]


@dataclass(frozen=True)
class DVH:
    """A cumulative DVH.

    ``doses``: the sample doses sorted from high to low (Gy); ``cum_volume_pct[i]``: the
    percentage of the structure's volume receiving at least ``doses[i]`` (ties included),
    rising to 100. ``volume_cc``: the structure's volume. ``mean_gy``: volume-weighted mean.
    """

    doses: np.ndarray
    cum_volume_pct: np.ndarray
    volume_cc: float
    mean_gy: float
    name: str = ""

    @property
    def max_gy(self) -> float:
        return float(self.doses[0])

    @property
    def min_gy(self) -> float:
        return float(self.doses[-1])

    def curve(self, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """(dose, volume %) on ``n`` evenly spaced doses from 0 to the maximum, for plotting."""
        d = np.linspace(0.0, self.max_gy, n)
        return d, np.array([volume_at_dose(self, float(v)) for v in d])


def _check(dose: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dose = np.asarray(dose, dtype=np.float64)
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ValueError(f"the structure mask must be boolean, not {mask.dtype}")
    if dose.shape != mask.shape:
        raise ValueError(f"dose shape {dose.shape} and mask shape {mask.shape} differ")
    if not mask.any():
        raise ValueError("the structure mask is empty")
    if not np.all(np.isfinite(dose[mask])):
        raise ValueError("the dose contains NaN or infinite values inside the structure")
    return dose, mask


def _supersampled(dose: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Doses at the sub-voxel centres inside the structure and the fraction of a voxel
    each one stands for (1 / k^ndim). Only the mask's bounding box (+1 voxel) is sampled."""
    from scipy import ndimage

    nz = np.nonzero(mask)
    lo = [max(int(i.min()) - 1, 0) for i in nz]
    hi = [min(int(i.max()) + 2, n) for i, n in zip(nz, mask.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    d, m = dose[box], mask[box].astype(np.float32)
    # sub-voxel centres of voxel i: i + (j + 0.5) / k - 0.5, j = 0..k-1
    axes = [(np.arange(n * k) + 0.5) / k - 0.5 for n in d.shape]
    coords = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(d.ndim, -1)
    inside = ndimage.map_coordinates(m, coords, order=1, mode="nearest") >= 0.5
    values = ndimage.map_coordinates(d, coords[:, inside], order=1, mode="nearest")
    return values, 1.0 / k**d.ndim


def cumulative_dvh(dose: np.ndarray, mask: np.ndarray, spacing_mm: Sequence[float] | float = 1.0, *,
                   supersample: int = 1, name: str = "") -> DVH:
    """The cumulative DVH of ``dose`` (Gy) inside the boolean ``mask`` (same grid).

    ``spacing_mm``: voxel size, for the volume in cc. ``supersample``: sub-voxels per axis
    (1: voxel centres only). Raises ValueError for an empty mask, mismatched shapes or
    non-finite doses in the structure.
    """
    dose, mask = _check(dose, mask)
    if int(supersample) != supersample or supersample < 1:
        raise ValueError(f"supersample must be a positive integer, not {supersample!r}")
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (dose.ndim,))
    voxel_cc = float(np.prod(spacing)) / 1000.0
    if supersample == 1:
        values, weight = dose[mask], 1.0
    else:
        values, weight = _supersampled(dose, mask, int(supersample))
        if values.size == 0:  # a structure thinner than half a voxel everywhere
            values, weight = dose[mask], 1.0
    doses = np.sort(values)[::-1]
    n = doses.size
    # volume at or above each dose: ties share the largest count
    counts = np.searchsorted(-doses, -doses, side="right")
    return DVH(doses=doses, cum_volume_pct=100.0 * counts / n, volume_cc=n * weight * voxel_cc,
               mean_gy=float(values.mean()), name=name)


def dose_at_volume(dvh: DVH, pct: float) -> float:
    """D_pct: the dose (Gy) received by at least ``pct`` % of the structure (0 < pct <= 100)."""
    if not (0.0 < pct <= 100.0):
        raise ValueError(f"the volume percentage must be in (0, 100], not {pct!r}")
    n = dvh.doses.size
    # the i-th hottest sample (0-based) stands for the volume fraction (i + 0.5) / n: its centre
    position = pct / 100.0 * n - 0.5
    if position <= 0:
        return float(dvh.doses[0])
    if position >= n - 1:
        return float(dvh.doses[-1])
    i = int(np.floor(position))
    t = position - i
    return float((1 - t) * dvh.doses[i] + t * dvh.doses[i + 1])


def volume_at_dose(dvh: DVH, dose_gy: float) -> float:
    """V_dose: percentage of the structure receiving at least ``dose_gy``."""
    k = int(np.searchsorted(-dvh.doses, -dose_gy, side="right"))
    return 100.0 * k / dvh.doses.size


def mean_dose(dose: np.ndarray, mask: np.ndarray) -> float:
    """Mean dose (Gy) over the voxels of ``mask``."""
    dose, mask = _check(dose, mask)
    return float(dose[mask].mean())


def dvh_metrics(dose: np.ndarray, mask: np.ndarray, spacing_mm: Sequence[float] | float = 1.0, *,
                supersample: int = 1) -> dict[str, float]:
    """D95, Dmean and D2 (Gy) of one structure."""
    h = cumulative_dvh(dose, mask, spacing_mm, supersample=supersample)
    return {"D95": dose_at_volume(h, 95.0), "Dmean": h.mean_gy, "D2": dose_at_volume(h, 2.0)}
