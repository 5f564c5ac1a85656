"""Previews of the tiny plugin's guided flow (a worked example for plugin authors).

Each is ``preview(config, ctx) -> Preview``: plain data, no widgets; the host runs it off the
GUI thread. The tiny "teacher" is the analytic function the MLP learns to imitate.
"""
from __future__ import annotations

import numpy as np
import torch

from workbench.api import Image, Preview, PreviewContext, Scatter, Table, human_bytes, human_count

from .tiny import TinyFitConfig
from .tiny_pipeline import Linear, MLP, make_data


class TargetFunction(torch.nn.Module):
    """y = sin(1.5 x0) + 0.5 x1 x2 - 0.3 x3: what the generated data follows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x[:, :1] * 1.5) + 0.5 * x[:, 1:2] * x[:, 2:3] - 0.3 * x[:, 3:4]


def teacher(config: TinyFitConfig, ctx: PreviewContext) -> Preview:
    prof = ctx.profile(TargetFunction(), torch.zeros(64, 4))
    grid = np.linspace(-2, 2, 41, dtype=np.float32)
    x0, x1 = np.meshgrid(grid, grid)
    pts = np.stack([x0.ravel(), x1.ravel(), np.ones_like(x0).ravel(), np.zeros_like(x0).ravel()], 1)
    with torch.no_grad():
        y = TargetFunction()(torch.from_numpy(pts)).numpy().reshape(x0.shape)
    return Preview(
        summary="The teacher is the analytic function the data follows: y = sin(1.5·x0) + 0.5·x1·x2 − 0.3·x3. "
        "It has no parameters; a student learns to imitate it.",
        figures={"parameters": f"{prof['parameters']:,d}", "storage": human_bytes(prof["storage_bytes"]),
                 "activation memory": human_bytes(prof["activation_peak_bytes"]),
                 "latency (batch 64)": f"{prof['latency_median_ms']:.3f} ms"},
        images=[Image("teacher output over (x0, x1), x2 = 1, x3 = 0", y, colormap="viridis",
                      extent=(-2.0, 2.0, -2.0, 2.0), x_label="x0", y_label="x1")],
    )


def data(config: TinyFitConfig, ctx: PreviewContext) -> Preview:
    x, y = make_data(config)  # raises InputError naming the file when it is unusable
    x, y = x.numpy(), y.numpy().ravel()
    n_val = max(len(x) // 5, 1)
    rows = [[f"x{i}", float(x[:, i].mean()), float(x[:, i].std()), float(x[:, i].min()), float(x[:, i].max())]
            for i in range(4)]
    rows.append(["y", float(y.mean()), float(y.std()), float(y.min()), float(y.max())])
    source = config.data_file or "generated (normal, seed %d)" % config.seed
    return Preview(
        summary=f"{len(x):,d} samples from {source}: {len(x) - n_val:,d} train, {n_val:,d} validation.",
        figures={"samples": f"{len(x):,d}", "train": f"{len(x) - n_val:,d}", "validation": f"{n_val:,d}",
                 "inputs": "4"},
        tables=[Table("Columns", ["column", "mean", "std", "min", "max"], rows)],
        scatters=[Scatter("x0 against y", x[:, 0], y, x_label="x0", y_label="y")],
    )


def sampling(config: TinyFitConfig, ctx: PreviewContext) -> Preview:
    x, y = make_data(config)
    n_val = max(len(x) // 5, 1)
    xt = x[n_val:].numpy()
    order = torch.randperm(len(xt), generator=torch.Generator().manual_seed(config.seed * 1000)).numpy()
    first = np.zeros(len(xt), dtype=bool)
    first[order[:config.batch_size]] = True
    steps = (len(xt) + config.batch_size - 1) // config.batch_size
    return Preview(
        summary=f"Each epoch visits the {len(xt):,d} training samples in a new random order, {config.batch_size} "
        f"at a time: {steps} optimiser steps per epoch. The first batch is circled.",
        figures={"batch size": str(config.batch_size), "steps per epoch": str(steps),
                 "steps in all": f"{steps * config.epochs:,d}"},
        scatters=[Scatter("first batch among the training inputs", xt[:, 0], xt[:, 1], highlight=first,
                          x_label="x0", y_label="x1")],
    )


def student(config: TinyFitConfig, ctx: PreviewContext) -> Preview:
    family = MLP if config.student == "mlp" else Linear
    model = family(config.hidden)
    prof = ctx.profile(model, torch.zeros(1, 4), latency=False)
    teacher_prof = ctx.profile(TargetFunction(), torch.zeros(1, 4), latency=False)
    keys = [("parameters", "parameters", lambda v: f"{v:,d}"), ("storage_bytes", "storage", human_bytes),
            ("activation_peak_bytes", "activation memory", human_bytes), ("macs", "MACs", human_count)]
    rows = [[title, fmt(teacher_prof[k]), fmt(prof[k])] for k, title, fmt in keys]
    return Preview(
        summary=f"A {config.student} student with {config.hidden} hidden units: {prof['parameters']:,d} parameters "
        "to train, predicted before any training.",
        figures={"parameters": f"{prof['parameters']:,d}", "storage": human_bytes(prof["storage_bytes"]),
                 "MACs": human_count(prof["macs"])},
        tables=[Table("Predicted footprint (one input)", ["", "teacher", "student"], rows)],
    )
