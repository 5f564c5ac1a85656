"""An in-memory `RunContext` for testing pipelines and training code without the job engine.

Metrics, logs, artifacts, evaluations and checkpoint events are kept in lists; checkpoints
are real files (safetensors + JSON, written atomically like the worker's) under
``run_dir/checkpoints``, so a second context on the same ``run_dir`` resumes from them::

    ctx = MemoryContext(tmp_path, seed=3)
    summary = drive(pipeline(config, ctx))        # run a generator to the end
    ctx.values("val_loss")                        # {epoch: value}

    ctx = MemoryContext(tmp_path, seed=3, cancel_after_checkpoints=2)   # stop after 2 epochs
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any, Callable, Generator, Mapping

from workbench.core.host_tools import HostTools
from workbench.core.worker import read_checkpoint, write_checkpoint
from workbench.api import (
    ArtifactEvent,
    Cancelled,
    CheckpointEvent,
    EvaluationEvent,
    LogEvent,
    MetricEvent,
    Progress,
    RunContext,
    UnknownComponentError,
)



class MemoryContext(HostTools, RunContext):
    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        seed: int = 0,
        device: str = "cpu",
        home: str | Path | None = None,
        run_id: str = "test-run",
        resume: bool = True,
        components: Mapping[str, Mapping[str, Any]] | None = None,
        cancel_after_checkpoints: int | None = None,
        cancel_when: Callable[["MemoryContext"], bool] | None = None,
    ):
        """``resume``: `load_checkpoint` returns the last checkpoint in ``run_dir`` if any.
        ``components``: ``{kind: {key: object}}`` served by `component`.
        ``cancel_after_checkpoints``: `cancelled` turns True once that many checkpoints were
        written by this context; ``cancel_when(ctx)`` is a general trigger."""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="wb-run-")
            run_dir = self._tmp.name
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.home = Path(home) if home is not None else self.run_dir / "home"
        self.run_id, self.seed, self.device = run_id, int(seed), device
        self.resume = resume
        self.components = {k: dict(v) for k, v in (components or {}).items()}
        self.cancel_after_checkpoints = cancel_after_checkpoints
        self.cancel_when = cancel_when
        self.metrics: list[MetricEvent] = []
        self.logs: list[LogEvent] = []
        self.artifacts: list[ArtifactEvent] = []
        self.evaluations: list[EvaluationEvent] = []
        self.checkpoints: list[CheckpointEvent] = []
        self.progress: list[Progress] = []
        self._cancel = False

    # -- RunContext -----------------------------------------------------------------------
    def metric(self, key: str, value: float, step: int) -> None:
        self.metrics.append(MetricEvent(key, float(value), int(step)))

    def log(self, message: str, level: str = "info") -> None:
        self.logs.append(LogEvent(message, level))

    def artifact(self, kind: str, path: str | Path, **meta: Any) -> Path:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"artifact {kind!r}: {path} does not exist")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self.artifacts.append(ArtifactEvent(kind, str(path), path.stat().st_size, digest, dict(meta)))
        return path

    def evaluation(self, subject: str, metric: str, value: float, criteria: str = "", case: str = "") -> None:
        self.evaluations.append(EvaluationEvent(subject, metric, float(value), criteria, case))

    def save_checkpoint(self, tensors: dict[str, Any], state: dict[str, Any], step: int) -> Path:
        path = write_checkpoint(self.run_dir, tensors, state, step)  # the worker's own writer
        self.checkpoints.append(CheckpointEvent(int(step), str(path)))
        return path

    def load_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return read_checkpoint(self.run_dir) if self.resume else None

    @property
    def cancelled(self) -> bool:
        if self._cancel:
            return True
        if self.cancel_after_checkpoints is not None and len(self.checkpoints) >= self.cancel_after_checkpoints:
            return True
        return bool(self.cancel_when and self.cancel_when(self))

    def cancel(self) -> None:
        self._cancel = True

    def component(self, kind: str, key: str) -> Any:
        table = self.components.get(kind, {})
        if key not in table:
            raise UnknownComponentError(kind, key, list(table))
        return table[key]

    # -- helpers for assertions -------------------------------------------------------------
    def values(self, key: str) -> dict[int, float]:
        """``{step: value}`` of one metric (a later value for the same step wins)."""
        return {m.step: m.value for m in self.metrics if m.key == key}

    def metric_table(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for m in self.metrics:
            out.setdefault(m.key, {})[m.step] = m.value
        return out

    def messages(self, level: str | None = None) -> list[str]:
        return [e.message for e in self.logs if level is None or e.level == level]

    def drive(self, gen: Generator[Any, None, Any]) -> Any:
        """Run a pipeline generator to the end, like the worker: keep its `Progress`, stop
        (closing the generator) once `cancelled` is true, return its return value."""
        return drive(gen, self)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "MemoryContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drive(gen: Generator[Any, None, Any], ctx: MemoryContext | None = None, *, raise_on_stop: bool = True) -> Any:
    """Exhaust ``gen``; with a ``ctx``, record progress and stop at the first yield after the
    context is cancelled (as the worker does): raises `Cancelled` (or returns None)."""
    try:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            except Cancelled:
                # a pipeline (or the shared trainer) may stop itself between yields once cancelled
                if raise_on_stop:
                    raise
                return None
            if ctx is not None:
                if isinstance(item, Progress):
                    ctx.progress.append(item)
                if ctx.cancelled:
                    gen.close()
                    if raise_on_stop:
                        raise Cancelled("cancelled by the user")
                    return None
    finally:
        gen.close()
