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
        """Write tensors and JSON state (one safetensors file) atomically; the last one is what
        `resume` reads. In a run the host commits it once it has stored the events sent before
        it; the returned path is where it will be then."""

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

    def profile(self, model: Any, example_input: Any, **options: Any) -> dict[str, Any]:
        """Measure ``model`` with the host profiler (parameters, storage, activation memory, MACs,
        latency; keys as ``workbench.core.profiling.profile_model``), so every plugin is measured alike.
        ``options``: device, threads, warmup, repeats."""
        raise NotImplementedError(f"{type(self).__name__} cannot profile models")

    def export(self, model: Any, example_input: Any, path: str | Path, format: str, **options: Any) -> dict[str, Any]:  # noqa: A002
        """Export ``model`` (``format``: onnx | torchscript) with the host exporter, checked against
        PyTorch (``workbench.core.export.export_model``); the file is not recorded as an artifact."""
        raise NotImplementedError(f"{type(self).__name__} cannot export models")

    def cache_dir(self, name: str) -> Path:
        """A folder under the home shared by all runs, e.g. ``cache_dir('sea-embeddings')``."""
        path = self.home / "cache" / name
        path.mkdir(parents=True, exist_ok=True)
        return path
