"""Config models of the VMAT pipelines (pydantic only: the GUI builds its forms from them)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from workbench.api import PipelineConfig


class CohortConfig(PipelineConfig):
    """Generate the synthetic prostate VMAT demo cohort as DICOM."""

    preset: Literal["demo", "paper"] = Field("demo", description="demo: small CPU cohort; paper: 20 train + 10 test at 3 mm.")
    cases: int = Field(12, ge=3, le=200, description="Number of cases (train/val/test split 70/15/15).")
    spacing_mm: float = Field(4.0, ge=1.0, le=8.0, description="Voxel size of the generated CT.")


class TeacherConfig(PipelineConfig):
    cohort_dir: str = Field("", description="Cohort folder with a manifest (empty: the demo cohort).")
    sampler: Literal["random", "dose-weighted", "gradient-weighted", "case-balanced"] = Field(
        "dose-weighted", description="How training patches are sampled.")
    preset: Literal["tiny", "demo", "paper"] = Field("demo", description="Network size.")
    epochs: int = Field(30, ge=1, le=2000, description="Training epochs.")


class DistillConfig(TeacherConfig):
    alpha: float = Field(1.0, ge=0, description="Weight of the teacher-output term.")
    beta: float = Field(0.0, ge=0, description="Weight of the feature term.")
    student_only_baseline: bool = Field(True, description="Also train the same student from ground truth alone.")
