"""The job engine: starts runs in worker processes and is the store's writer for them.

GUI and CLI both drive this same engine. A reader thread per job drains the worker's event
queue into the store and hands each event to listeners (the CLI's progress bar, the GUI's
Qt signals), so neither front end ever blocks on a run.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from workbench.api import (
    ArtifactEvent,
    CheckpointEvent,
    EvaluationEvent,
    LogEvent,
    MetricEvent,
    Plugin,
    PipelineSpec,
    Progress,
    StatusEvent,
    WorkbenchError,
)

from .environment import package_versions
from .paths import run_dir
from .store import RESUMABLE, TERMINAL, Store
from .worker import checkpoint_step, commit_checkpoint, discard_staged_checkpoints, worker_main

Listener = Callable[[str, Any], None]
_CTX = mp.get_context("spawn")  # no fork: safe beside Qt threads and CUDA


@dataclass
class Job:
    run_id: str
    process: Any
    events: Any
    cancel_event: Any
    listeners: list[Listener] = field(default_factory=list)
    status: str = "running"
    error: str = ""
    started: float = field(default_factory=time.time)
    last_progress: Progress | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _cancel_requested: bool = False

    def cancel(self, grace_s: float = 10.0) -> None:
        """Cooperative at the pipeline's next yield; killed if still alive after `grace_s`."""
        self._cancel_requested = True
        self.cancel_event.set()

        def hard_stop() -> None:
            if not self._done.wait(grace_s) and self.process.is_alive():
                self.process.kill()

        threading.Thread(target=hard_stop, daemon=True).start()

    def wait(self, timeout: float | None = None) -> str:
        self._done.wait(timeout)
        return self.status

    @property
    def done(self) -> bool:
        return self._done.is_set()


class Engine:
    def __init__(self, store: Store, home: Path):
        self.store, self.home = store, Path(home)
        self.jobs: dict[str, Job] = {}

    # -- starting --------------------------------------------------------------------
    def submit(self, plugin: Plugin, spec: PipelineSpec, config: BaseModel,
               listener: Listener | None = None, parent: str | None = None) -> Job:
        if spec.status != "ready":
            raise WorkbenchError(f"pipeline {plugin.name}.{spec.id} is planned but not built yet")
        data = config.model_dump(mode="json")
        run_id = self.store.create_run(plugin.name, spec.id, data, int(data.get("seed", 0)), parent=parent)
        return self._start(plugin, spec, run_id, data, resume=False, listener=listener)

    def resume(self, plugin: Plugin, run_id: str, listener: Listener | None = None) -> Job:
        run = self.store.get_run(run_id)
        if run["status"] not in RESUMABLE:
            raise WorkbenchError(f"run {run['id']} is {run['status']}; only {', '.join(RESUMABLE)} runs can be resumed")
        spec = plugin.pipeline(run["pipeline"])
        folder = run_dir(self.home, run["id"])
        discard_staged_checkpoints(folder)
        step = checkpoint_step(folder)
        if step is not None:
            # Metrics past the checkpoint will be produced again by the resumed run.
            self.store.drop_metrics_after(run["id"], step)
        self.store.add_log(run["id"], f"resumed from {'step %d' % step if step is not None else 'the start'}")
        self.store.update_run(run["id"], resumes=(run.get("resumes") or 0) + 1, error="")
        return self._start(plugin, spec, run["id"], run["config"], resume=True, listener=listener)

    def _start(self, plugin: Plugin, spec: PipelineSpec, run_id: str, data: dict, resume: bool,
               listener: Listener | None) -> Job:
        events, cancel_event = _CTX.Queue(), _CTX.Event()
        process = _CTX.Process(
            target=worker_main,
            args=(plugin, spec.id, data, run_id, str(self.home), events, cancel_event, resume, os.getpid()),
            name=f"workbench-run-{run_id}",
            daemon=True,
        )
        self.store.update_run(run_id, status="running", started=time.time(), finished=None, pid=os.getpid(),
                              versions=package_versions())
        job = Job(run_id, process, events, cancel_event, listeners=[listener] if listener else [])
        self.jobs[run_id] = job
        process.start()
        threading.Thread(target=self._pump, args=(job,), name=f"pump-{run_id}", daemon=True).start()
        return job

    # -- the reader: worker events -> store -> listeners --------------------------------
    def _pump(self, job: Job) -> None:
        store, run_id = self.store, job.run_id
        final: StatusEvent | None = None
        try:
            while final is None:
                try:
                    event = job.events.get(timeout=0.2)
                except queue_mod.Empty:
                    if not job.process.is_alive():
                        try:  # the last events may still be in the pipe
                            event = job.events.get(timeout=1.0)
                        except queue_mod.Empty:
                            code = job.process.exitcode
                            status = "cancelled" if job._cancel_requested else "failed"
                            final = StatusEvent(status, error=f"worker process ended unexpectedly (exit code {code})"
                                                if status == "failed" else "stopped hard after the grace period")
                            break
                    else:
                        continue
                final = self._record(job, event)
                if final is None:  # the terminal status goes out from _finish, once the job is done
                    for listener in list(job.listeners):
                        _safe_call(listener, run_id, event)
        except Exception as exc:  # noqa: BLE001 - the pump must always finish the run
            final = StatusEvent("failed", error=f"engine error: {exc}")
        self._finish(job, final)

    def _record(self, job: Job, event: Any) -> StatusEvent | None:
        store, run_id = self.store, job.run_id
        if isinstance(event, Progress):
            job.last_progress = event
        elif isinstance(event, MetricEvent):
            store.add_metrics(run_id, [(event.step, event.key, event.value, event.time)])
        elif isinstance(event, LogEvent):
            store.add_log(run_id, event.message, event.level, event.time)
        elif isinstance(event, ArtifactEvent):
            store.add_artifact(run_id, event.kind, event.path, event.bytes, event.sha256, event.meta)
        elif isinstance(event, EvaluationEvent):
            store.add_evaluation(run_id, event.subject, event.metric, event.value, event.criteria, event.case)
        elif isinstance(event, CheckpointEvent):
            # committed now that every event sent before it is stored: killed before this,
            # the run resumes from the previous checkpoint and produces those events again
            event.path = str(commit_checkpoint(run_dir(self.home, run_id), event.path))
        elif isinstance(event, StatusEvent):
            if event.status == "started":
                store.update_run(run_id, device=event.device)
            else:
                return event
        return None

    def _finish(self, job: Job, final: StatusEvent) -> None:
        run = self.store.get_run(job.run_id)
        now = time.time()
        elapsed = now - (run.get("started") or now)
        fields: dict[str, Any] = {
            "status": final.status, "finished": now, "error": final.error,
            "duration_s": (run.get("duration_s") or 0.0) + elapsed,
        }
        if final.summary:
            fields["summary"] = final.summary
        self.store.update_run(job.run_id, **fields)
        if final.detail:
            self.store.add_log(job.run_id, final.detail, "error")
        job.process.join(timeout=5)
        job.status, job.error = final.status, final.error
        job._done.set()
        for listener in list(job.listeners):
            _safe_call(listener, job.run_id, final)


def _safe_call(listener: Listener, run_id: str, event: Any) -> None:
    try:
        listener(run_id, event)
    except Exception:  # noqa: BLE001 - a broken view must not stop the run being recorded
        pass


def is_terminal(status: str) -> bool:
    return status in TERMINAL
