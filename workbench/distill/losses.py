"""Loss terms for distillation and a weighted sum of them (torchdistill-style).

A `WeightedLoss` holds named terms. Each term is an ``nn.Module`` taking two tensors
(prediction, target) and names which of the call's keyword inputs feed it::

    loss = WeightedLoss({
        "ground_truth": LossTerm(MSE(), weight=0.5, inputs=("student", "target")),
        "teacher": LossTerm(MSE(), weight=0.5, inputs=("student", "teacher")),
    })
    total, parts = loss(student=s, teacher=t, target=y)

``total`` is the weighted sum (differentiable); ``parts`` maps each term name to its
*unweighted* value, detached, for logging. Terms with parameters (feature adapters) are
submodules of the `WeightedLoss`: give ``loss.parameters()`` to the optimizer and the
loss to the trainer's ``extra_modules`` so the adapters are checkpointed.

`build_loss` makes one from a config list of ``{"key", "weight", "inputs", "kwargs"}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from workbench.api import ConfigError


class MSE(nn.Module):
    """Mean squared error."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred, target)


class L1(nn.Module):
    """Mean absolute error."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(pred, target)


class Cosine(nn.Module):
    """``1 - cos(pred, target)`` per sample (everything after ``dim 0`` flattened), batch mean."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p, t = pred.flatten(1), target.flatten(1)
        return (1.0 - F.cosine_similarity(p, t, dim=1, eps=self.eps)).mean()


class KLDiv(nn.Module):
    """Hinton KD: ``KL(softmax(teacher/T) || softmax(student/T)) * T**2``, batch mean.

    ``pred`` are the student's logits, ``target`` the teacher's; classes along ``dim``.
    The ``T**2`` factor keeps gradient magnitudes comparable across temperatures.
    """

    def __init__(self, temperature: float = 4.0, dim: int = 1):
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}", key="temperature")
        self.temperature, self.dim = float(temperature), dim

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        T = self.temperature
        log_p = F.log_softmax(pred / T, dim=self.dim)
        log_q = F.log_softmax(target / T, dim=self.dim)
        # sum over classes, mean over every other position (batch and any spatial dims)
        kl = (log_q.exp() * (log_q - log_p)).sum(dim=self.dim)
        return kl.mean() * (T * T)


class FeatureMSE(nn.Module):
    """MSE between intermediate features, through a learned 1x1(x1) adapter when the
    student's channel width differs from the teacher's.

    ``spatial_dims`` picks the adapter: 0 -> ``Linear`` on ``(N, C)`` features, 1/2/3 ->
    ``Conv1d/2d/3d`` with kernel size 1 on ``(N, C, ...)``. Channels are axis 1. When the
    spatial sizes differ, ``resize=True`` interpolates the student's map to the teacher's
    size; otherwise a mismatch is an error.
    """

    def __init__(self, student_channels: int | None = None, teacher_channels: int | None = None,
                 spatial_dims: int = 2, resize: bool = False):
        super().__init__()
        if spatial_dims not in (0, 1, 2, 3):
            raise ConfigError(f"spatial_dims must be 0, 1, 2 or 3, got {spatial_dims}", key="spatial_dims")
        self.spatial_dims, self.resize = spatial_dims, resize
        self.adapter: nn.Module = nn.Identity()
        if student_channels is not None and teacher_channels is not None and student_channels != teacher_channels:
            if spatial_dims == 0:
                self.adapter = nn.Linear(student_channels, teacher_channels)
            else:
                conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[spatial_dims - 1]
                self.adapter = conv(student_channels, teacher_channels, kernel_size=1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = self.adapter(pred)
        if x.shape[1] != target.shape[1]:
            raise ValueError(
                f"feature channels differ: student {tuple(pred.shape)} -> {tuple(x.shape)}, teacher "
                f"{tuple(target.shape)}; give FeatureMSE(student_channels, teacher_channels) to add an adapter"
            )
        if x.shape[2:] != target.shape[2:]:
            if not self.resize:
                raise ValueError(f"feature sizes differ: student {tuple(x.shape)}, teacher {tuple(target.shape)} "
                                 "(use resize=True to interpolate)")
            mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[x.dim() - 2]
            x = F.interpolate(x, size=target.shape[2:], mode=mode, align_corners=False)
        return F.mse_loss(x, target)


#: keys usable in `build_loss` configs
LOSS_TERMS: dict[str, type[nn.Module]] = {
    "mse": MSE,
    "l1": L1,
    "cosine": Cosine,
    "kl": KLDiv,
    "feature_mse": FeatureMSE,
}


@dataclass
class LossTerm:
    module: nn.Module
    weight: float = 1.0
    #: names of the two keyword inputs of `WeightedLoss.__call__` fed to ``module``
    inputs: tuple[str, str] = ("student", "target")


class WeightedLoss(nn.Module):
    """``total = sum(weight_i * term_i(inputs_i))`` over named terms; see the module doc."""

    def __init__(self, terms: Mapping[str, LossTerm | nn.Module]):
        super().__init__()
        if not terms:
            raise ConfigError("a weighted loss needs at least one term", key="loss")
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        self.inputs: dict[str, tuple[str, str]] = {}
        for name, term in terms.items():
            if isinstance(term, nn.Module):
                term = LossTerm(term)
            if len(term.inputs) != 2:
                raise ConfigError(f"term {name!r}: inputs must name two tensors, got {term.inputs!r}", key="loss")
            self.terms[name] = term.module
            self.weights[name] = float(term.weight)
            self.inputs[name] = (str(term.inputs[0]), str(term.inputs[1]))

    def forward(self, **tensors: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        for name, module in self.terms.items():
            a, b = self.inputs[name]
            missing = [k for k in (a, b) if k not in tensors]
            if missing:
                raise KeyError(f"loss term {name!r} needs inputs {missing} (given: {sorted(tensors)})")
            value = module(tensors[a], tensors[b])
            parts[name] = value.detach()
            weighted = value * self.weights[name]
            total = weighted if total is None else total + weighted
        assert total is not None
        return total, parts

    def extra_repr(self) -> str:
        return ", ".join(f"{n}={w:g}*{self.inputs[n]}" for n, w in self.weights.items())


def build_loss(spec: Iterable[Mapping[str, Any]]) -> WeightedLoss:
    """From config entries ``{"key": "mse", "weight": 0.5, "inputs": ["student", "teacher"],
    "name": "kd", "kwargs": {...}}`` (``name`` defaults to ``key``; unknown keys are errors)."""
    terms: dict[str, LossTerm] = {}
    for i, entry in enumerate(spec):
        entry = dict(entry)
        unknown = set(entry) - {"key", "weight", "inputs", "name", "kwargs"}
        if unknown:
            raise ConfigError(f"unknown fields {sorted(unknown)}", key=f"loss[{i}]")
        key = entry.get("key")
        if key not in LOSS_TERMS:
            raise ConfigError(f"unknown loss term {key!r} (known: {', '.join(sorted(LOSS_TERMS))})", key=f"loss[{i}]")
        name = entry.get("name", key)
        if name in terms:
            raise ConfigError(f"duplicate loss term name {name!r}", key=f"loss[{i}]")
        try:
            module = LOSS_TERMS[key](**entry.get("kwargs", {}))
        except TypeError as exc:
            raise ConfigError(f"bad kwargs for {key!r}: {exc}", key=f"loss[{i}]") from None
        terms[name] = LossTerm(module, float(entry.get("weight", 1.0)), tuple(entry.get("inputs", ("student", "target"))))
    return WeightedLoss(terms)
