"""What a pipeline receives besides its config: the only way it talks to the host.

Pipelines never write to the store or to Qt. They yield `Progress` and call these methods;
the host turns them into events, the job engine stores them, views show them.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any


class RunContext(abc.ABC):
    run_id: str
    seed: int
    #: this run's own folder under the workbench home (artifacts, checkpoints)
    run_dir: Path
    #: the workbench home, for caches shared across runs (e.g. teacher embeddings)
    home: Path
    #: resolved compute device, e.g. "cpu" or "cuda:0"
    device: str

    @abc.abstractmethod
    def metric(self, key: str, value: float, step: int) -> None: ...

    @abc.abstractmethod
    def log(self, message: str, level: str = "info") -> None: ...

    def warn(self, message: str) -> None:
        self.log(message, "warning")

    @abc.abstractmethod
    def artifact(self, kind: str, path: str | Path, **meta: Any) -> Path:
        """Record a file the pipeline wrote (ideally under `run_dir`)."""

    @abc.abstractmethod
    def evaluation(self, subject: str, metric: str, value: float, criteria: str = "", case: str = "") -> None: ...

    @abc.abstractmethod
    def save_checkpoint(self, tensors: dict[str, Any], state: dict[str, Any], step: int) -> Path:
        """Write safetensors + JSON state atomically; the last one is what `resume` reads."""

    @abc.abstractmethod
    def load_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(tensors, state) of the last checkpoint when resuming, else None."""

    @property
    @abc.abstractmethod
    def cancelled(self) -> bool:
        """True once the user asked to cancel; also checked by the host at each yield."""

    @abc.abstractmethod
    def component(self, kind: str, key: str) -> Any:
        """Import and return a registered component of this plugin."""

    def cache_dir(self, name: str) -> Path:
        """A folder under the home shared by all runs, e.g. ``cache_dir('sea-embeddings')``."""
        path = self.home / "cache" / name
        path.mkdir(parents=True, exist_ok=True)
        return path
