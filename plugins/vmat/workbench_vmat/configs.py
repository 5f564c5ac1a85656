"""Config models of the VMAT pipelines (pydantic only: the GUI builds its forms from them)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from workbench.api import PipelineConfig


class CohortConfig(PipelineConfig):
    """Generate the synthetic prostate VMAT demo cohort as DICOM."""

    preset: Literal["demo", "paper"] = Field(
        "demo", description="demo: 8 cases at 4 mm, Monte Carlo reference with 1e7 histories and light denoising "
        "(CPU, about 10 minutes); paper: 20 train + 10 test cases at 3 mm, Monte Carlo with 2e8 histories "
        "(generate it on a GPU).")
    cases: int = Field(0, ge=0, le=200, description="Number of cases; 0: the preset's (demo 8, paper 30). "
                       "Split train/val/test 70/15/15 (paper: 20 train + 10 test).")
    spacing_mm: float = Field(0.0, ge=0.0, le=8.0, description="Voxel size of the generated CT in mm (1 to 8); "
                              "0: the preset's (demo 4, paper 3).")
    reference: Literal["auto", "monte-carlo", "pencil-beam"] = Field(
        "auto", description="Ground-truth engine. monte-carlo: pyRadMC in the CT, dose to medium; pencil-beam: a "
        "cheaper deterministic stand-in (heterogeneous pencil beam, same machine and dose to medium); auto: "
        "Monte Carlo.")
    histories: int = Field(0, ge=0, le=10_000_000_000, description="Monte Carlo histories per case; 0: the "
                           "preset's (demo 1e7, paper 2e8).")
    cp_spacing_deg: float = Field(4.0, ge=1.0, le=20.0, description="Gantry-angle spacing of the control points "
                                  "(degrees).")

    @model_validator(mode="after")
    def _check_spacing(self) -> "CohortConfig":
        if 0.0 < self.spacing_mm < 1.0:
            raise ValueError("spacing_mm must be 0 (the preset's) or between 1 and 8 mm")
        return self


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
