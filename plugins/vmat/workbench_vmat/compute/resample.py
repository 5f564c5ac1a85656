"""Put volumes on a common grid (trilinear, in patient coordinates) and check coverage."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from workbench.api import InputError

from . import _dicom as D
from .volume import Volume

__all__ = ["resample", "check_frame_of_reference", "check_within"]

#: index-space slack for "on the grid" (floating point in DS strings)
_EDGE = 1e-3


def check_frame_of_reference(reference: Volume, other: Volume) -> None:
    """InputError naming ``other`` when both volumes carry different FrameOfReferenceUIDs."""
    D.check_frame_of_reference(
        reference.frame_of_reference_uid, other.frame_of_reference_uid, other.source or "<volume>",
        reference.source or "the reference",
    )


def check_within(inner: Volume, outer: Volume, *, tolerance_mm: float = 1.0) -> None:
    """InputError naming ``inner`` (e.g. a dose) unless its grid lies inside ``outer`` (e.g. the CT).

    "Inside" means every voxel centre of ``inner`` falls within the region covered by
    ``outer``'s voxels (centres +- half a voxel), give or take ``tolerance_mm``.
    """
    check_frame_of_reference(outer, inner)
    where = inner.source or "<volume>"
    idx = outer.world_to_index(inner.corners_world())
    half = 0.5 + tolerance_mm / np.asarray(outer.spacing)
    lo = -half
    hi = np.asarray(outer.shape) - 1 + half
    beyond = np.maximum(lo - idx, idx - hi).max(axis=0)  # per axis, in voxels of outer
    if np.all(beyond <= 0):
        return
    mm = float(np.max(beyond * np.asarray(outer.spacing)))
    below = idx.max(axis=0) < lo
    above = idx.min(axis=0) > hi
    if np.any(below | above):
        raise InputError(where, f"grid lies entirely outside {outer.source or 'the CT'}")
    raise InputError(where, f"grid extends {mm:.1f} mm beyond {outer.source or 'the CT'}")


def resample(source: Volume, target: Volume, *, fill: float = 0.0) -> Volume:
    """``source`` interpolated (trilinear) at the voxel centres of ``target``'s grid.

    Positions are matched in patient coordinates, so grids may differ in origin,
    spacing, extent and orientation. Target voxels outside ``source``'s grid get
    ``fill``. Frames of reference must agree when both are set. The result has
    ``target``'s geometry, ``source``'s values (float32), meta and frame of reference.
    """
    check_frame_of_reference(target, source)
    src = np.asarray(source.array, dtype=np.float32)
    # target index -> source index: s = A t + b
    A = (source.directions.T @ target.directions) * (np.asarray(target.spacing)[None, :] / np.asarray(source.spacing)[:, None])
    b = source.world_to_index(np.asarray(target.origin))
    if np.allclose(A - np.diag(np.diag(A)), 0, atol=1e-6):
        out = _separable(src, np.diag(A), b, target.shape, fill)
    else:
        out = _general(src, A, b, target.shape, fill)
    return Volume(
        array=out,
        origin=target.origin,
        spacing=target.spacing,
        orientation=target.orientation,
        frame_of_reference_uid=source.frame_of_reference_uid or target.frame_of_reference_uid,
        source=source.source,
        meta=dict(source.meta),
    )


def _axis_weights(n_src: int, pos: np.ndarray):
    """Lower index, upper weight and validity of 1-D linear interpolation at ``pos``."""
    valid = (pos >= -_EDGE) & (pos <= n_src - 1 + _EDGE)
    p = np.clip(pos, 0, n_src - 1)
    i0 = np.clip(np.floor(p).astype(np.int64), 0, max(n_src - 2, 0))
    w1 = (p - i0).astype(np.float32) if n_src > 1 else np.zeros(len(p), np.float32)
    i1 = np.minimum(i0 + 1, n_src - 1)
    return i0, i1, w1, valid


def _separable(src, scale, offset, shape, fill):
    out = src
    valid_all = []
    for a in range(3):
        pos = scale[a] * np.arange(shape[a]) + offset[a]
        i0, i1, w1, valid = _axis_weights(src.shape[a], pos)
        lo = np.take(out, i0, axis=a)
        hi = np.take(out, i1, axis=a)
        w = w1.reshape([-1 if k == a else 1 for k in range(3)])
        out = lo + (hi - lo) * w
        valid_all.append(valid)
    mask = valid_all[0][:, None, None] & valid_all[1][None, :, None] & valid_all[2][None, None, :]
    return np.where(mask, out, np.float32(fill)).astype(np.float32)


def _general(src, A, b, shape, fill):
    out = np.empty(shape, dtype=np.float32)
    ii, jj = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
    n = np.asarray(src.shape)
    for k in range(shape[0]):
        t = np.stack([np.full(ii.shape, k), ii, jj]).reshape(3, -1).astype(np.float64)
        s = A @ t + b[:, None]
        valid = np.all((s >= -_EDGE) & (s <= (n - 1)[:, None] + _EDGE), axis=0)
        vals = ndimage.map_coordinates(src, s, order=1, mode="nearest")
        out[k] = np.where(valid, vals, fill).reshape(shape[1:])
    return out
