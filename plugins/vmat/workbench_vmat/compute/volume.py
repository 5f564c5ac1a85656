"""A 3-D image on a regular grid in DICOM patient coordinates (mm).

``array`` is indexed (slice, row, column) = (z, y, x). Voxel (k, i, j) is centred at

    origin + j * dx * row_dir + i * dy * col_dir + k * dz * slice_dir

where ``row_dir``/``col_dir`` are the two direction cosines of ImageOrientationPatient
(direction of increasing column and row index), ``slice_dir = row_dir x col_dir`` and
``spacing = (dz, dy, dx)`` (dy = PixelSpacing[0], the distance between rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Volume", "AXIAL"]

#: ImageOrientationPatient of an axial image (patient x to the left, y to the back)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class Volume:
    array: np.ndarray
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]  # (dz, dy, dx), mm
    orientation: tuple[float, ...] = AXIAL  # ImageOrientationPatient (row dir, column dir)
    frame_of_reference_uid: str | None = None
    source: str | None = None  # the file or folder it was read from, for messages
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"a volume is 3-D (slices, rows, columns), not {self.array.shape}")
        self.origin = tuple(float(x) for x in self.origin)
        self.spacing = tuple(float(x) for x in self.spacing)
        self.orientation = tuple(float(x) for x in self.orientation)
        if len(self.origin) != 3 or len(self.spacing) != 3 or len(self.orientation) != 6:
            raise ValueError("origin and spacing need 3 values, orientation 6")
        if not all(np.isfinite(self.spacing)) or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be positive, not {self.spacing}")
        r, c = np.array(self.orientation[:3]), np.array(self.orientation[3:])
        if abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3 or abs(r @ c) > 1e-3:
            raise ValueError(f"orientation {self.orientation} is not two orthonormal direction cosines")

    # -- geometry ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def row_dir(self) -> np.ndarray:
        return np.array(self.orientation[:3])

    @property
    def col_dir(self) -> np.ndarray:
        return np.array(self.orientation[3:])

    @property
    def slice_dir(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    @property
    def directions(self) -> np.ndarray:
        """3x3 matrix whose columns are the patient-space directions of index axes (z, y, x)."""
        return np.stack([self.slice_dir, self.col_dir, self.row_dir], axis=1)

    def index_to_world(self, index: Any) -> np.ndarray:
        """(..., 3) indices (k, i, j), possibly fractional -> (..., 3) patient coordinates."""
        idx = np.asarray(index, dtype=float)
        return np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ self.directions.T

    def world_to_index(self, points: Any) -> np.ndarray:
        """(..., 3) patient coordinates -> (..., 3) fractional indices (k, i, j)."""
        p = np.asarray(points, dtype=float) - np.asarray(self.origin)
        return (p @ self.directions) / np.asarray(self.spacing)

    def frame_axes(self) -> list[np.ndarray]:
        """Coordinates (mm) of the voxel centres along the volume's own axes (z, y, x).

        They are positions along ``slice_dir``, ``col_dir`` and ``row_dir``: two volumes
        with the same orientation can be compared with these (e.g. by gamma analysis).
        """
        o = self.directions.T @ np.asarray(self.origin)
        return [o[a] + np.arange(n) * s for a, (n, s) in enumerate(zip(self.shape, self.spacing))]

    def same_orientation(self, other: "Volume", tol: float = 1e-4) -> bool:
        return bool(np.allclose(self.orientation, other.orientation, atol=tol))

    def same_grid(self, other: "Volume", tol: float = 1e-3) -> bool:
        return (
            self.shape == other.shape
            and self.same_orientation(other)
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.spacing, other.spacing, atol=tol)
        )

    def corners_world(self) -> np.ndarray:
        """(8, 3) patient coordinates of the outermost voxel centres."""
        n = np.array(self.shape) - 1
        idx = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])], dtype=float)
        return self.index_to_world(idx)

    def with_array(self, array: np.ndarray, **changes: Any) -> "Volume":
        """Same geometry, new voxel values (and optionally other fields)."""
        changes.setdefault("meta", dict(self.meta))
        return replace(self, array=array, **changes)
