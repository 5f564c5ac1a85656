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
    """Train a large 3D dose network on a cohort's train split (val split for early stopping)."""

    cohort_dir: str = Field("", description="Cohort folder with a manifest (cohort.toml or cohort.csv); empty: the "
                            "demo cohort (generated and cached on first use, as by vmat.cohort); builtin:tiny: a tiny "
                            "analytic cohort for smoke runs.")
    preset: Literal["tiny", "demo", "paper"] = Field(
        "demo", description="Network size and training budget. tiny: for tests; demo: a small teacher that trains in "
        "minutes on 2 CPU cores; paper: a residual 3D U-Net with >= 10 M parameters (train it on a GPU).")
    base_channels: int = Field(0, ge=0, le=256, description="Channels of the teacher's first level (doubled per "
                               "level); 0: the preset's.")
    levels: int = Field(0, ge=0, le=5, description="Resolution levels of the U-Net; 0: the preset's.")
    residual: bool = Field(True, description="Predict a correction to the dose in water (output = input dose + "
                           "network) rather than the dose itself.")
    sampler: Literal["random", "dose-weighted", "gradient-weighted", "case-balanced"] = Field(
        "dose-weighted", description="How training patches are drawn: random positions; dose-weighted (centres "
        "drawn in proportion to the reference dose: the high-dose region); gradient-weighted (in proportion to the "
        "dose gradient: the penumbra); case-balanced (the same number of patches from every case).")
    patch_size: int = Field(0, ge=0, le=256, description="Edge of the cubic training patch in voxels; 0: the "
                            "preset's.")
    patches_per_epoch: int = Field(0, ge=0, le=100_000, description="Training patches per epoch; 0: the preset's.")
    batch_size: int = Field(0, ge=0, le=256, description="Patches per optimiser step; 0: the preset's.")
    epochs: int = Field(0, ge=0, le=5000, description="Training epochs; 0: the preset's.")
    lr: float = Field(2e-3, gt=0, le=1, description="AdamW learning rate (cosine schedule with warm-up).")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="AdamW weight decay.")
    early_stop_metric: Literal["val_gamma_2_2", "val_loss"] = Field(
        "val_gamma_2_2", description="Validation metric for early stopping and for keeping the best weights: the "
        "gamma 2%/2mm pass rate (10% cutoff) on the val split, full volumes; or the validation loss.")
    patience: int = Field(0, ge=0, le=1000, description="Stop after this many validations without improvement; "
                          "0: never stop early.")
    val_every: int = Field(1, ge=1, le=1000, description="Validate every this many epochs.")
    amp: bool = Field(True, description="Mixed precision on CUDA (ignored on CPU).")


class DistillConfig(TeacherConfig):
    """Distil a compact student from a teacher on the cohort (plus a student-only baseline) and evaluate both."""

    teacher_path: str = Field("", description="A teacher saved by vmat.teacher (.safetensors with its .json "
                              "metadata beside it); empty: train one first inside this run with the teacher "
                              "settings above.")
    student: Literal["unet-s", "unet-xs", "cnn"] = Field(
        "unet-s", description="Student family: unet-s (2-level U-Net), unet-xs (narrower), cnn (plain convolutional "
        "stack, no down-sampling). Always <= 1/10 of the teacher's parameters at the preset.")
    student_channels: int = Field(0, ge=0, le=128, description="Channels of the student's first level; 0: the "
                                  "preset's.")
    student_epochs: int = Field(0, ge=0, le=5000, description="Student training epochs; 0: the preset's.")
    alpha: float = Field(1.0, ge=0, le=100, description="Weight of the teacher-output term (student vs teacher dose).")
    beta: float = Field(0.01, ge=0, le=100, description="Weight of the feature term on the chosen layers (each a "
                        "mean squared error relative to the teacher feature's mean square: 1 = as large as the "
                        "feature itself; the ground-truth term is an L1 in units of the prescription, ~0.01).")
    feature_layers: str = Field("bottleneck,dec0", description="Comma-separated layer pairs for the feature term: "
                                "a name used in both networks (e.g. bottleneck, enc1, dec1) or teacher=student; "
                                "1x1x1 adapters map student widths to the teacher's.")
    student_only_baseline: bool = Field(True, description="Also train the same student from ground truth alone "
                                        "(alpha = beta = 0) for comparison.")
