"""A helper process for the guided flow: step previews, footprint measurements, exports and
run cards. Qt-free (it runs in a spawned process).

Previews and measurements import torch and run Python-heavy code (the profiler traces every
op). In the GUI process that would hold the GIL for long stretches — importing torch alone
stalls the event loop for over a second — so they run in one long-lived worker process,
started on first use and shared by every flow page. Requests carry a slot and a generation:
when a newer request for the same slot arrives (the user changed a setting), the older one is
skipped if not started yet, and sees ``ctx.cancelled`` if it is running. Results come back on
a queue that a reader thread turns into callbacks (the GUI's callbacks emit Qt signals).
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import queue as queue_mod
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from workbench.api import Cancelled, Preview, PreviewContext, WorkbenchError, load_target

_CTX = mp.get_context("spawn")  # no fork beside Qt threads
SLOTS = 1024
Callback = Callable[[Any, str, str], None]  # (value or None, error, detail)


class WorkerPreviewContext(PreviewContext):
    """The host side of a preview: the plugin's registry and the host's own profiler."""

    def __init__(self, home: Path, plugin, cancelled: Callable[[], bool]):
        self.home = Path(home)
        self._plugin = plugin
        self._cancelled = cancelled

    def profile(self, model: Any, example_input: Any, latency: bool = True) -> dict[str, Any]:
        from workbench.core import profiling

        if latency:
            return profiling.profile_model(model, example_input, device="cpu", warmup=3,
                                           repeats=profiling.MIN_REPEATS)
        was_training = model.training
        model.eval()
        try:  # size, memory and compute only: no timed passes (quick)
            out: dict[str, Any] = dict(profiling.count_parameters(model))
            out["storage_bytes"] = profiling.storage_bytes(model)
            flops = profiling.count_flops(model, example_input)
            out["flops"], out["macs"] = flops, flops // 2
            out["activation_peak_bytes"], out["activation_method"] = profiling.activation_peak_bytes(model, example_input)
            return out
        finally:
            model.train(was_training)

    def component(self, kind: str, key: str) -> Any:
        return self._plugin.registry().get(kind, key)

    @property
    def cancelled(self) -> bool:
        return self._cancelled()


def _session(home: str, plugin):
    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session

    return Session.open(Path(home), PluginManager.from_plugins(plugin))


def handle(kind: str, payload: dict, cancelled: Callable[[], bool]) -> Any:
    """Do one request (in the worker process; also callable in-process by tests)."""
    plugin, home = payload["plugin"], payload["home"]
    if kind == "preview":
        spec = plugin.pipeline(payload["pipeline"])
        config = spec.config.model_validate(payload["config"])
        value = load_target(payload["target"])(config, WorkerPreviewContext(Path(home), plugin, cancelled))
        if not isinstance(value, Preview):
            raise TypeError(f"preview {payload['target']} returned {type(value).__name__}, not a Preview")
        return value
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    session = _session(home, plugin)
    try:
        if kind == "profile":
            return session.profile(payload["run_id"], device="cpu", repeats=20)
        if kind == "export":
            return session.export(payload["run_id"], payload["format"])
        if kind == "card":
            from workbench.core.report import write_run_card

            return str(write_run_card(session, payload["run_id"], payload.get("path")))
    finally:
        session.store.close()
    raise ValueError(f"unknown request kind {kind!r}")


def serve(requests, results, latest) -> None:
    """The worker's loop: one request at a time, skipping superseded ones."""
    try:  # background work: the window and a running job come first on a busy CPU
        import os

        os.nice(10)
    except (AttributeError, OSError):
        pass
    try:
        import torch

        torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    except Exception:  # noqa: BLE001 - previews that need torch will say so themselves
        pass
    while True:
        item = requests.get()
        if item is None:
            return
        rid, slot, generation, kind, payload = item

        def cancelled(slot=slot, generation=generation) -> bool:
            return slot >= 0 and latest[slot] != generation

        if cancelled():
            results.put((rid, None, "superseded", ""))
            continue
        try:
            value = handle(kind, payload, cancelled)
        except Cancelled:
            results.put((rid, None, "superseded", ""))
        except WorkbenchError as exc:
            results.put((rid, None, str(exc), traceback.format_exc()))
        except Exception as exc:  # noqa: BLE001 - reported to the GUI with the traceback
            results.put((rid, None, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        else:
            try:
                results.put((rid, value, "", ""))
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                results.put((rid, None, f"the result could not be sent back: {exc}", traceback.format_exc()))


class FlowWorker:
    """The GUI side: submit requests, get callbacks on a reader thread. Started on first use;
    restarted if it died (the pending requests are answered with an error).

    Nothing multiprocessing does here runs on the caller's (UI) thread: creating the first
    queue starts multiprocessing's resource tracker and starting the worker forks the GUI
    process, each holding the GIL for a few hundred milliseconds. A starter thread does both
    and then forwards the requests that waited in a plain in-process queue meanwhile."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._slots = itertools.count(0)
        self._callbacks: dict[int, Callback] = {}
        self._outbox: queue_mod.Queue = queue_mod.Queue()
        self._thread: threading.Thread | None = None
        self.process = None
        self.latest = None  # shared generations per slot (created by the starter thread)
        self._latest_local = [0] * SLOTS  # what the UI asked for, until `latest` exists
        self.ready = threading.Event()

    def new_slot(self) -> int:
        return next(self._slots) % SLOTS

    def submit(self, kind: str, payload: dict, callback: Callback, slot: int = -1, generation: int = 0) -> None:
        with self._lock:
            rid = next(self._ids)
            self._callbacks[rid] = callback
            if slot >= 0:
                self.supersede(slot, generation)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="flow-worker-io", daemon=True)
                self._thread.start()
        self._outbox.put((rid, slot, generation, kind, payload))

    def supersede(self, slot: int, generation: int) -> None:
        """Mark everything of `slot` older than `generation` as no longer wanted."""
        self._latest_local[slot] = generation
        if self.latest is not None:
            self.latest[slot] = generation

    def _run(self) -> None:
        """Start the worker process, then forward requests to it; a second thread reads results."""
        try:
            if self.latest is None:
                latest = _CTX.Array("q", SLOTS, lock=False)
                latest[:] = self._latest_local
                self.latest = latest
            requests, results = _CTX.Queue(), _CTX.Queue()
            process = _CTX.Process(target=serve, args=(requests, results, self.latest),
                                   name="workbench-flow-worker", daemon=True)
            process.start()
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the reason
            self._fail_all(f"could not start the preview worker: {exc}", traceback.format_exc())
            return
        self.process = process
        self.ready.set()
        threading.Thread(target=self._read, args=(process, results), name="flow-worker-reader", daemon=True).start()
        while process.is_alive():
            try:
                item = self._outbox.get(timeout=0.5)
            except queue_mod.Empty:
                continue
            if item is None:
                requests.put(None)
                return
            requests.put(item)

    def _fail_all(self, error: str, detail: str = "") -> None:
        with self._lock:
            pending, self._callbacks = self._callbacks, {}
        for cb in pending.values():
            _call(cb, None, error, detail)

    def _read(self, process, results) -> None:
        while True:
            try:
                rid, value, error, detail = results.get(timeout=0.5)
            except queue_mod.Empty:
                if process.is_alive():
                    continue
                self.ready.clear()
                self._fail_all(f"the preview worker stopped unexpectedly (exit code {process.exitcode})")
                return
            except (EOFError, OSError):
                return
            with self._lock:
                cb = self._callbacks.pop(rid, None)
            if cb is not None:
                _call(cb, value, error, detail)

    def stop(self) -> None:
        self._outbox.put(None)
        if self.process is not None:
            self.process.join(2)
            if self.process.is_alive():
                self.process.terminate()


def _call(cb: Callback, value, error: str, detail: str) -> None:
    try:
        cb(value, error, detail)
    except Exception:  # noqa: BLE001 - a closed window's callback must not kill the reader
        pass


_WORKER: FlowWorker | None = None


def worker() -> FlowWorker:
    """The process-wide flow worker (one for all flow pages)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = FlowWorker()
    return _WORKER
