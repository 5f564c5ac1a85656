"""Events a pipeline emits. Plain picklable dataclasses: they cross a process boundary.

A pipeline *yields* `Progress` (each yield is a cancellation point) and reports the rest
through its `RunContext`, which turns them into the other event types below.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    done: float
    total: float | None = None
    message: str = ""
    phase: str = ""


@dataclass
class MetricEvent:
    key: str
    value: float
    step: int
    time: float = field(default_factory=time.time)


@dataclass
class LogEvent:
    message: str
    level: str = "info"  # info | warning | error
    time: float = field(default_factory=time.time)


@dataclass
class ArtifactEvent:
    kind: str
    path: str
    bytes: int
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationEvent:
    subject: str  # what is judged, e.g. "student", "teacher", "input"
    metric: str  # e.g. "gamma_pass_rate", "accuracy"
    value: float
    criteria: str = ""  # e.g. "2%/2mm, 10% cutoff"
    case: str = ""  # case / fold id, "" for aggregate


@dataclass
class CheckpointEvent:
    step: int
    path: str


@dataclass
class StatusEvent:
    """Sent by the worker itself (not the pipeline): started, completed, failed, cancelled."""

    status: str
    error: str = ""
    detail: str = ""
    device: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


Event = Progress | MetricEvent | LogEvent | ArtifactEvent | EvaluationEvent | CheckpointEvent | StatusEvent
