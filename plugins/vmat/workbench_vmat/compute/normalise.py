"""Input/output scaling of the dose networks, stored with the model (JSON metadata).

CT: ``(HU - hu_offset) / hu_scale`` clipped to ``hu_clip`` (water -> 0, air -> -1, bone
~ +1; metal clipped). Dose: divided by ``dose_scale_gy`` (the cohort's prescription
dose), so the network works near 1 in the target whatever the prescription; the
prediction is multiplied back. A model applied with another normalisation than it was
trained with is wrong, hence the metadata.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Normalisation:
    hu_offset: float = 0.0
    hu_scale: float = 1000.0
    hu_clip: tuple[float, float] = (-1.0, 3.0)
    dose_scale_gy: float = 2.0

    def __post_init__(self) -> None:
        if not (self.hu_scale > 0 and self.dose_scale_gy > 0 and self.hu_clip[0] < self.hu_clip[1]):
            raise ValueError(f"invalid normalisation {self}")

    def inputs(self, ct_hu: np.ndarray, dose_water_gy: np.ndarray) -> np.ndarray:
        """``(2, Z, Y, X)`` float32 network input of one case."""
        if ct_hu.shape != dose_water_gy.shape:
            raise ValueError(f"CT {ct_hu.shape} and dose {dose_water_gy.shape} are on different grids")
        ct = np.clip((np.asarray(ct_hu, np.float32) - self.hu_offset) / self.hu_scale, *self.hu_clip)
        dose = np.asarray(dose_water_gy, np.float32) / self.dose_scale_gy
        return np.stack([ct, dose]).astype(np.float32)

    def dose(self, dose_gy: np.ndarray) -> np.ndarray:
        return (np.asarray(dose_gy, np.float32) / self.dose_scale_gy).astype(np.float32)

    def to_gy(self, normalised: np.ndarray) -> np.ndarray:
        """Back to Gy; a dose is never negative."""
        return np.clip(np.asarray(normalised, np.float32) * self.dose_scale_gy, 0.0, None)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["hu_clip"] = list(self.hu_clip)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Normalisation":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown normalisation fields {sorted(unknown)}")
        d = dict(data)
        if "hu_clip" in d:
            d["hu_clip"] = tuple(float(v) for v in d["hu_clip"])
        return cls(**d)
