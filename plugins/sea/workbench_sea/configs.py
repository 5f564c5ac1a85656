"""Config models of the SEA pipelines (pydantic only: the GUI builds its forms from them)."""
from __future__ import annotations

from typing import Literal

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


class DistillConfig(EmbedConfig):
    sampler: Literal["random", "spl", "dpp", "dpp-qd", "class-balanced", "kmeans"] = Field(
        "random", description="How teacher embeddings are sampled to fit the reduction.")
    sample_size: int = Field(2000, ge=10, description="Embeddings sampled to fit the reduction.")
    reduction: Literal["pca", "umap", "none"] = Field("pca", description="Dimensionality reduction of teacher embeddings.")
    reduced_dim: Literal[64, 128, 256] = Field(64, description="Dimensions after reduction (student output size).")
    epochs: int = Field(20, ge=1, le=1000, description="Student training epochs.")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
