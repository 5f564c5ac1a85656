"""Config models of the SEA pipelines (pydantic only: the GUI builds its forms from them)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from workbench.api import PipelineConfig


class EmbedConfig(PipelineConfig):
    """Embed a domain dataset with a teacher; embeddings go to the shared content-addressed cache."""

    dataset_dir: str = Field("", description="Dataset folder (UrbanSound8K, ESC-50, SONYC-UST or one folder per class). "
                             "Empty: the generated demo dataset under the workbench home.")
    dataset_format: Literal["auto", "urbansound8k", "esc50", "sonyc-ust", "folders"] = Field(
        "auto", description="Layout of the dataset folder.")
    teacher: str = Field("aisfx", description="Teacher spec: aisfx, openl3:<repr>/<content>/<size>, "
                         "keras-h5:<path> or torchscript:<path>[@<rate>].")
    hop_s: float = Field(0.5, gt=0, le=10, description="Hop between analysis windows, seconds.")
    center: bool = Field(True, description="Pad so windows are centred on their timestamps (as openl3).")
    batch_size: int = Field(32, ge=1, le=1024, description="Frames per teacher forward pass.")
    max_clips: int = Field(0, ge=0, description="Embed at most this many clips (0: all).")
    demo_clips_per_class_per_fold: int = Field(4, ge=1, le=100, description="Size of the generated demo dataset.")


SAMPLERS = ("random", "spl", "dpp", "dpp-qd", "class-balanced", "kmeans")
Sampler = Literal["random", "spl", "dpp", "dpp-qd", "class-balanced", "kmeans"]
Reduction = Literal["pca", "umap", "none"]
ReducedDim = Literal[64, 128, 256]
Width = Annotated[float, Field(gt=0, le=4)]


class _DistillSettings(EmbedConfig):
    """What a distillation run and a sweep share (everything but the swept choices)."""

    sample_size: int = Field(2000, ge=10, le=10_000_000, description="Teacher embeddings (frames) sampled to fit "
                             "the reduction; all frames when the dataset has fewer.")
    student_blocks: int = Field(4, ge=1, le=4, description="Conv blocks of the student (the SEA/L3 audio net has 4).")
    student_stem_stride: int = Field(1, ge=1, le=4, description="Stride of the student's first conv (the published "
                                     "students: 1). 2 quarters the largest feature maps, so a wider student fits "
                                     "the same activation memory.")
    student_window_s: float = Field(1.0, ge=0.25, le=10, description="Audio the student sees per embedding, "
                                    "seconds (the published students: 1 s). Its spectrogram hop scales with it, so "
                                    "the feature maps and the activation memory stay about the same.")
    student_block_widths: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        [], max_length=4, description="Conv channels of each student block (one per block; overrides the width "
        "multiplier). Empty: SEA's widths times the multiplier.")
    epochs: int = Field(20, ge=1, le=1000, description="Maximum student training epochs.")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    lr_schedule: Literal["plateau", "cosine", "step", "none"] = Field(
        "plateau", description="Learning-rate schedule (plateau: divide by 10 when the validation MSE stalls).")
    train_batch_size: int = Field(64, ge=1, le=4096, description="Frames per student training step.")
    patience: int = Field(5, ge=1, le=1000, description="Early stopping: epochs without a better validation MSE.")
    val_fraction: float = Field(0.1, gt=0, lt=0.9, description="Share of clips held out to validate the student.")
    eval_folds: int = Field(0, ge=0, le=100, description="Downstream cross-validation over the first N folds of "
                            "the dataset's metadata (0: every fold; UrbanSound8K has 10).")
    mlp_hidden: int = Field(128, ge=1, le=4096, description="Hidden units of the downstream MLP classifier.")
    mlp_epochs: int = Field(200, ge=1, le=10000, description="Maximum training iterations of the downstream MLP.")
    mlp_alphas: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        [1e-3], min_length=1, max_length=10, description="L2 penalty of the downstream MLP. Several: each tested "
        "fold picks one on a validation fold (the next fold) and refits on all its training folds (one fit per "
        "penalty and fold more).")
    scratch_baseline: bool = Field(True, description="Also train the student architecture from scratch on the "
                                   "labels and evaluate it downstream.")
    scratch_epochs: int = Field(10, ge=1, le=1000, description="Epochs of the from-scratch baseline.")
    reference_student: str = Field("", description="Keras .h5 of a published SEA student to evaluate alongside "
                                   "(e.g. edgel3_sea_ust_audio_emb_64.h5); empty: none.")
    profile: bool = Field(True, description="Measure storage, activation memory, MACs and latency of teacher "
                          "and student with the host profiler.")
    export_onnx: bool = Field(True, description="Export the student to ONNX (outputs checked against PyTorch).")
    export_torchscript: bool = Field(True, description="Export the student to TorchScript (checked likewise).")
    quantize_int8: bool = Field(False, description="Also export an int8 dynamically quantized TorchScript student.")
    projection_points: int = Field(2000, ge=10, le=100_000, description="Frames in the 2-D projection of the "
                                   "teacher-vs-student scatter view.")


class DistillConfig(_DistillSettings):
    """Sample teacher embeddings, fit a reduction, train a SEA student, evaluate it downstream."""

    sampler: Sampler = Field("random", description="How teacher embeddings are sampled to fit the reduction.")
    reduction: Reduction = Field("pca", description="Dimensionality reduction of teacher embeddings "
                                 "(none: the student learns the full teacher embedding).")
    reduced_dim: ReducedDim = Field(64, description="Dimensions after reduction = the student's output size.")
    student_width: float = Field(1.0, gt=0, le=4, description="Multiplier on the SEA conv widths (1: the published "
                                 "widths for the output size); the last conv always has the output size.")


class SweepConfig(_DistillSettings):
    """Every combination of samplers x reductions x output sizes x widths, each a distillation run."""

    samplers: list[Sampler] = Field(["random", "spl", "dpp", "dpp-qd"], min_length=1,
                                    description="Sampling strategies to compare.")
    reductions: list[Reduction] = Field(["pca"], min_length=1, description="Reductions to compare.")
    reduced_dims: list[ReducedDim] = Field([64], min_length=1, description="Student output sizes to compare.")
    student_widths: list[Width] = Field([1.0], min_length=1, description="Width multipliers to compare.")
