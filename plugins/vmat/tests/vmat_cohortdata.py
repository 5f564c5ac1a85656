"""The tiny analytic DICOM cohort for the training tests (see workbench_vmat.compute.tiny_cohort)."""
from __future__ import annotations

from workbench_vmat.compute.tiny_cohort import tiny_case, write_tiny_cohort

__all__ = ["tiny_case", "write_tiny_cohort"]
