"""A tiny plugin used by the host's own tests and by plugin authors as a worked example.

It trains a small MLP regressor on generated data. Enable it outside tests with
``WORKBENCH_EXTRA_PLUGINS=workbench.testing.tiny:plugin``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from workbench.api import (ComponentSpec, DemoSpec, FlowSpec, PipelineConfig, PipelineSpec, Plugin, ProfileTargetSpec,
                           StepSpec, ViewSpec, component_field)


class TinyFitConfig(PipelineConfig):
    epochs: int = Field(5, ge=1, le=1000, description="Passes over the training data.")
    samples: int = Field(256, ge=16, le=100_000, description="Generated training samples.")
    hidden: int = Field(16, ge=1, le=1024, description="Width of the hidden layer.")
    lr: float = Field(0.05, gt=0, le=10, description="Learning rate.")
    batch_size: int = Field(32, ge=1, le=4096, description="Samples per step.")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="Optimizer.")
    student: str = component_field("students", "mlp", description="Model family.")
    step_delay_s: float = Field(0.0, ge=0, le=5, description="Sleep per step (makes a run long, for tests).")
    fail_at_epoch: int = Field(-1, ge=-1, description="Raise an error at this epoch (tests); -1 never.")
    data_file: str = Field("", description="Optional .npy file of inputs (N x 4) to fit instead of generated data.")


_FLOW = "workbench.testing.tiny_flow"

plugin = Plugin(
    name="tiny",
    title="Tiny (test plugin)",
    version="1.0",
    description="Fits a small MLP to a generated regression problem.",
    pipelines=[
        PipelineSpec("fit", "Fit a tiny MLP", TinyFitConfig, "workbench.testing.tiny_pipeline:run_fit",
                     description="Trains with a checkpoint every epoch; resumable.", resumable=True,
                     smoke={"epochs": 2, "samples": 64}),
    ],
    components=[
        ComponentSpec("students", "mlp", "workbench.testing.tiny_pipeline:MLP", "MLP"),
        ComponentSpec("students", "linear", "workbench.testing.tiny_pipeline:Linear", "Linear"),
    ],
    views=[ViewSpec("tiny.weights", "Weights", ("model",), "workbench.testing.tiny_views:weights_view")],
    profile_targets=[ProfileTargetSpec("fit", "workbench.testing.tiny_pipeline:build_model")],
    demo=DemoSpec("fit", {"epochs": 3}, "Fits a tiny MLP for three epochs."),
    flows=[FlowSpec("fit", title="Fit a tiny MLP, step by step", steps=(
        StepSpec("teacher", (), f"{_FLOW}:teacher", description="The function the student imitates."),
        StepSpec("data", ("data_file", "samples"), f"{_FLOW}:data",
                 description="Generated samples, or your own N x 4 .npy file."),
        StepSpec("sampling", ("batch_size",), f"{_FLOW}:sampling",
                 description="How training samples are drawn into batches."),
        StepSpec("student", ("student", "hidden"), f"{_FLOW}:student",
                 description="The model family and its size, predicted before training."),
        StepSpec("distill", ("epochs", "lr", "optimizer", "device")),
        StepSpec("inspect"),
    ))],
)
