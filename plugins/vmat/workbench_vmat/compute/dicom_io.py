"""DICOM input and output for the VMAT plugin: one import for the whole set.

- :class:`Volume` (``volume.py``): array (z, y, x) + origin + spacing + orientation +
  frame of reference, the type every reader returns and every writer takes.
- CT series (``ct.py``): :func:`read_ct_series`, :func:`write_ct_series`.
- RTDOSE (``rtdose.py``): :func:`read_rtdose`, :func:`write_rtdose`, :func:`validate_dose`.
- Common grids (``resample.py``): :func:`resample`, :func:`check_within`,
  :func:`check_frame_of_reference`.
- RTSTRUCT (``rtstruct.py``): :func:`read_rtstruct`, :func:`write_rtstruct`.
- :func:`dose_on_ct`: the usual chain for a patient: dose checked against the CT
  (frame of reference, extent), then resampled onto the CT grid.

Every problem with an input file raises ``workbench.api.InputError(path, problem)``.
"""
from __future__ import annotations

from .ct import read_ct_series, write_ct_series
from .resample import check_frame_of_reference, check_within, resample
from .rtdose import read_rtdose, validate_dose, write_rtdose
from .rtstruct import Structure, read_rtstruct, write_rtstruct
from .volume import AXIAL, Volume

__all__ = [
    "AXIAL",
    "Structure",
    "Volume",
    "check_frame_of_reference",
    "check_within",
    "dose_on_ct",
    "read_ct_series",
    "read_rtdose",
    "read_rtstruct",
    "resample",
    "validate_dose",
    "write_ct_series",
    "write_rtdose",
    "write_rtstruct",
]


def dose_on_ct(dose: Volume, ct: Volume, *, tolerance_mm: float = 1.0) -> Volume:
    """``dose`` on ``ct``'s grid, after checking it belongs to the CT.

    InputError (naming the dose file) when the frames of reference differ or the dose
    grid reaches more than ``tolerance_mm`` beyond the CT. CT voxels outside the dose
    grid get 0 Gy.
    """
    check_within(dose, ct, tolerance_mm=tolerance_mm)
    return resample(dose, ct, fill=0.0)
