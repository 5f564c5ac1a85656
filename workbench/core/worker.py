"""The worker process: runs one pipeline generator and streams its events to the parent.

It never touches the store. Each yield of the pipeline is a cancellation point; the parent
may also kill this process outright (hard stop), which frees any GPU memory it held.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from . import paths
from .host_tools import HostTools
from workbench.api import (
    ArtifactEvent,
    Cancelled,
    CheckpointEvent,
    EvaluationEvent,
    LogEvent,
    MetricEvent,
    Plugin,
    Progress,
    RunContext,
    StatusEvent,
    WorkbenchError,
    load_target,
)

CHECKPOINT = "checkpoints/last"
PROGRESS_INTERVAL_S = 0.1


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise WorkbenchError(f"device {requested!r} requested but no CUDA device is available")
    return requested


class WorkerContext(HostTools, RunContext):
    def __init__(self, plugin: Plugin, run_id: str, seed: int, run_dir: Path, home: Path, device: str,
                 queue: Any, cancel_event: Any, resume: bool):
        self.plugin, self.run_id, self.seed = plugin, run_id, seed
        self.run_dir, self.home, self.device = run_dir, home, device
        self._queue, self._cancel, self._resume = queue, cancel_event, resume
        self._registry = plugin.registry()

    def _send(self, event: Any) -> None:
        self._queue.put(event)

    def metric(self, key: str, value: float, step: int) -> None:
        self._send(MetricEvent(key, float(value), int(step)))

    def log(self, message: str, level: str = "info") -> None:
        self._send(LogEvent(message, level))

    def artifact(self, kind: str, path: str | Path, **meta: Any) -> Path:
        path = Path(path).resolve()
        self._send(ArtifactEvent(kind, str(path), path.stat().st_size, sha256_of(path), dict(meta)))
        return path

    def evaluation(self, subject: str, metric: str, value: float, criteria: str = "", case: str = "") -> None:
        self._send(EvaluationEvent(subject, metric, float(value), criteria, case))

    def save_checkpoint(self, tensors: dict[str, Any], state: dict[str, Any], step: int) -> Path:
        # staged, not committed: the host commits it when it records this event, after every
        # event sent before it (the epoch's metrics) is stored (see commit_checkpoint)
        staged = write_checkpoint(self.run_dir, tensors, state, step, commit=False)
        self._send(CheckpointEvent(int(step), str(staged)))
        return checkpoint_path(self.run_dir)

    def load_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return read_checkpoint(self.run_dir) if self._resume else None

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def component(self, kind: str, key: str) -> Any:
        return self._registry.get(kind, key)


#: safetensors header key holding the checkpoint's step and JSON state
_CHECKPOINT_META = "workbench.checkpoint"
#: staged checkpoints: checkpoints/last.staged-STEP.safetensors
_STAGED = ".staged-"


def checkpoint_path(run_dir: Path) -> Path:
    """The committed checkpoint, the one ``resume`` reads."""
    return Path(f"{run_dir / CHECKPOINT}.safetensors")


def write_checkpoint(run_dir: Path, tensors: dict[str, Any], state: dict[str, Any], step: int,
                     commit: bool = True) -> Path:
    """One safetensors file whose header carries the step and the strict-JSON state, written
    beside the last one (staged) and swapped in by a single rename (:func:`commit_checkpoint`):
    a kill at any moment (the worker exits within 0.5 s of its parent's death, wherever it
    is) leaves the last complete checkpoint, tensors and state from the same step. (Tensors
    and state used to be two files renamed one after the other; a kill between the renames
    paired new weights with the old step, and the resumed run trained an epoch twice.)
    ``commit=False`` leaves it staged and returns the staged file."""
    from safetensors.torch import save_file

    base = run_dir / CHECKPOINT
    base.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"step": int(step), "state": state}, allow_nan=False)
    staged = Path(f"{base}{_STAGED}{int(step)}.safetensors")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, f"{staged}.tmp",
              metadata={_CHECKPOINT_META: text})
    os.replace(f"{staged}.tmp", staged)
    return commit_checkpoint(run_dir, staged) if commit else staged


def commit_checkpoint(run_dir: Path, staged: str | Path) -> Path:
    """Make a staged checkpoint the one ``resume`` reads (one rename).

    In a run the host does this when it records the worker's CheckpointEvent, after it has
    stored every event the worker sent before it: had the worker committed it itself, a host
    killed in between left a checkpoint ahead of the stored metrics, and the resumed run
    never produced the missing ones again (seen once in a fresh-clone CI run).
    """
    base = run_dir / CHECKPOINT
    staged = Path(staged)
    if staged.parent != base.parent or not staged.name.startswith(f"{base.name}{_STAGED}"):
        raise WorkbenchError(f"{staged} is not a staged checkpoint of run folder {run_dir}")
    path = checkpoint_path(run_dir)
    os.replace(staged, path)
    Path(f"{base}.json").unlink(missing_ok=True)  # the older layout's state file, now stale
    return path


def discard_staged_checkpoints(run_dir: Path) -> None:
    """Remove checkpoints a killed run staged but its host never committed."""
    base = run_dir / CHECKPOINT
    if base.parent.is_dir():
        for path in base.parent.glob(f"{base.name}{_STAGED}*"):
            path.unlink(missing_ok=True)


def _checkpoint_meta(run_dir: Path) -> dict[str, Any] | None:
    """{"step", "state"} of the last checkpoint (None if there is none); no code is executed."""
    from safetensors import safe_open

    base = run_dir / CHECKPOINT
    tensor_path = checkpoint_path(run_dir)
    if not tensor_path.exists():
        return None
    with safe_open(str(tensor_path), framework="pt") as f:
        text = (f.metadata() or {}).get(_CHECKPOINT_META)
    if text is None:  # written before the state moved into the header: the JSON beside it
        meta_path = Path(f"{base}.json")
        if not meta_path.exists():
            return None
        text = meta_path.read_text()
    return json.loads(text)


def read_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    meta = _checkpoint_meta(run_dir)
    if meta is None:
        return None
    from safetensors.torch import load_file

    return load_file(str(checkpoint_path(run_dir))), meta["state"]


def checkpoint_step(run_dir: Path) -> int | None:
    meta = _checkpoint_meta(run_dir)
    return None if meta is None else int(meta["step"])


def _watch_parent(parent_pid: int) -> None:
    # If the engine's process dies (even by SIGKILL), stop: nobody would read our events.
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(0.5)


def _seed(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_main(plugin: Plugin, pipeline_id: str, config_data: dict[str, Any], run_id: str, home: str,
                queue: Any, cancel_event: Any, resume: bool, parent_pid: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    status = StatusEvent("failed")
    try:
        spec = plugin.pipeline(pipeline_id)
        config = spec.config.model_validate(config_data)
        device = resolve_device(getattr(config, "device", "auto"))
        run_dir = paths.run_dir(Path(home), run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        ctx = WorkerContext(plugin, run_id, getattr(config, "seed", 0), run_dir, Path(home), device,
                            queue, cancel_event, resume)
        from workbench.core.environment import device_description

        queue.put(StatusEvent("started", device=device_description(device)))
        _seed(ctx.seed)
        run_fn = load_target(spec.run)
        gen = run_fn(config, ctx)
        last_sent = 0.0
        summary: Any = None
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    summary = stop.value
                    break
                if isinstance(item, Progress):
                    now = time.monotonic()
                    finished = item.total is not None and item.done >= item.total
                    if now - last_sent >= PROGRESS_INTERVAL_S or finished:
                        queue.put(item)
                        last_sent = now
                if cancel_event.is_set():
                    gen.close()
                    raise Cancelled("cancelled by the user")
        finally:
            gen.close()
        status = StatusEvent("completed", summary=summary if isinstance(summary, dict) else {})
    except Cancelled as exc:
        status = StatusEvent("cancelled", error=str(exc))
    except WorkbenchError as exc:
        status = StatusEvent("failed", error=str(exc), detail=traceback.format_exc())
    except BaseException as exc:  # noqa: BLE001 - any crash marks the run failed, with detail
        status = StatusEvent("failed", error=f"{type(exc).__name__}: {exc}", detail=traceback.format_exc())
    queue.put(status)
    queue.close()
    queue.join_thread()


# -- torchrun ranks other than 0 ------------------------------------------------------------
class _Discard:
    """An event queue nobody reads: a follower rank reports nothing to the host."""

    def put(self, event: Any) -> None:
        pass


def torchrun_rank() -> tuple[int, int]:
    """(rank, world size) when this process was started by torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


def run_follower(plugin: Plugin, pipeline_id: str, config_data: dict[str, Any], home: str | Path) -> int:
    """Run a pipeline as a non-zero torchrun rank: in this process, with a context whose
    events go nowhere and whose run folder is a temporary one, so that only rank 0 (which
    goes through the job engine as usual) writes to the store and the run's artifacts. The
    pipeline joins the process group from the torchrun environment itself."""
    import tempfile

    rank, world = torchrun_rank()
    spec = plugin.pipeline(pipeline_id)
    config = spec.config.model_validate(config_data)
    device = resolve_device(getattr(config, "device", "auto"))
    with tempfile.TemporaryDirectory(prefix=f"workbench-rank{rank}-") as tmp:
        ctx = WorkerContext(plugin, f"rank{rank}-of-{world}", getattr(config, "seed", 0), Path(tmp), Path(home),
                            device, _Discard(), threading.Event(), False)
        _seed(ctx.seed)
        gen = load_target(spec.run)(config, ctx)
        try:
            for _ in gen:
                pass
        finally:
            gen.close()
    return 0
