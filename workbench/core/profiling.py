"""Profile a model the same way for every plugin: size, activation memory, MACs, latency.

`profile_model` returns a flat JSON-able dict::

    parameters            unique parameters (tied weights counted once)
    trainable_parameters  of those, requires_grad
    buffers               elements in buffers (e.g. BatchNorm statistics)
    parameter_bytes       bytes of unique parameters + buffers in memory
    storage_bytes         length of the safetensors serialization of the state_dict
    activation_peak_bytes peak bytes of tensors alive during one forward pass (no_grad),
                          excluding parameters, buffers and the input
    activation_method     how that was measured (see below)
    macs, flops           multiply-accumulates (= flops / 2) per forward, counted by
                          torch.utils.flop_counter.FlopCounterMode (matmul/conv-like ops only;
                          element-wise ops such as bias adds and activations are not counted)
    latency_median_ms, latency_p90_ms, latency_mean_ms, latency_min_ms, latency_max_ms
    warmup, repeats       forward passes before timing, timed forward passes
    threads               CPU threads used (torch.set_num_threads; restored afterwards)
    device, device_name, torch, input_shapes, dtype

Activation memory: on CPU a `TorchDispatchMode` sees every op's outputs; each new tensor
storage (not a parameter, buffer or input storage) adds its bytes to a live total and a
`weakref.finalize` on the storage subtracts them when it is freed; the peak of that total
is reported. Scratch memory inside a kernel is not seen. On CUDA it is the rise of
``torch.cuda.max_memory_allocated`` over the allocation before the forward.
"""
from __future__ import annotations

import math
import platform
import statistics
import time
import weakref
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from workbench.distill import move_to_device, resolve_device, storage_safe

MIN_REPEATS = 20


# -- inputs ---------------------------------------------------------------------------------
def _call(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, Mapping):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def _tensors(obj: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def _storage_ptr(t: torch.Tensor) -> int | None:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # sparse, mkldnn, ...
        return None


# -- size ------------------------------------------------------------------------------------
def _unique_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict with exact aliases (tied weights) kept once, ready for safetensors."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[Any, ...]] = set()
    for name, t in model.state_dict().items():
        key = (_storage_ptr(t) or id(t), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, t.device)
        if key not in seen:
            seen.add(key)
            out[name] = t
    return storage_safe(out)


def storage_bytes(model: nn.Module) -> int:
    """Bytes of the model's state_dict serialized as safetensors (header included)."""
    from safetensors.torch import save

    return len(save(_unique_state_dict(model)))


def count_parameters(model: nn.Module) -> dict[str, int]:
    params = {id(p): p for p in model.parameters()}  # parameters() already skips tied duplicates
    buffers = {id(b): b for b in model.buffers()}
    nbytes = sum(t.numel() * t.element_size() for t in (*params.values(), *buffers.values()))
    return {
        "parameters": sum(p.numel() for p in params.values()),
        "trainable_parameters": sum(p.numel() for p in params.values() if p.requires_grad),
        "buffers": sum(b.numel() for b in buffers.values()),
        "parameter_bytes": int(nbytes),
    }


# -- activation memory -------------------------------------------------------------------------
class _LiveStorageTracker(TorchDispatchMode):
    """Counts bytes of storages created by ops while the mode is active, until they die."""

    def __init__(self, excluded: set[int]):
        super().__init__()
        self.excluded = excluded
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self._finalizers: list[weakref.finalize] = []

    def _release(self, ptr: int) -> None:
        size = self.live.pop(ptr, None)
        if size is not None:
            self.current -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _tensors(out):
            try:
                storage = t.untyped_storage()
            except (RuntimeError, NotImplementedError):
                continue
            ptr, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or ptr in self.excluded or ptr in self.live:
                continue
            self.live[ptr] = size
            self.current += size
            self._finalizers.append(weakref.finalize(storage, self._release, ptr))
        self.peak = max(self.peak, self.current)
        return out

    def detach_all(self) -> None:
        for f in self._finalizers:
            f.detach()
        self._finalizers.clear()


def activation_peak_bytes(model: nn.Module, example_input: Any, device: torch.device | str = "cpu") -> tuple[int, str]:
    """(peak bytes, method) of one no_grad forward; model and input already on ``device``."""
    device = torch.device(device)
    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            out = _call(model, example_input)
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - base
            del out
            return int(peak), "cuda max_memory_allocated delta"
        excluded = {p for t in (*model.parameters(), *model.buffers(), *_tensors(example_input))
                    if (p := _storage_ptr(t)) is not None}
        tracker = _LiveStorageTracker(excluded)
        with tracker:
            out = _call(model, example_input)
        del out
        tracker.detach_all()
        return int(tracker.peak), "live tensor storages (TorchDispatchMode)"


# -- MACs ---------------------------------------------------------------------------------------
def count_flops(model: nn.Module, example_input: Any) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _call(model, example_input)
    return int(counter.get_total_flops())


# -- latency --------------------------------------------------------------------------------------
def measure_latency(model: nn.Module, example_input: Any, device: torch.device | str = "cpu", warmup: int = 5,
                    repeats: int = 30) -> list[float]:
    """Milliseconds of each of ``repeats`` no_grad forward passes after ``warmup`` untimed ones."""
    device = torch.device(device)
    with torch.no_grad():
        for _ in range(warmup):
            _call(model, example_input)
        times: list[float] = []
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                _call(model, example_input)
                end.record()
                end.synchronize()
                times.append(float(start.elapsed_time(end)))
        else:
            for _ in range(repeats):
                t0 = time.perf_counter()
                _call(model, example_input)
                times.append((time.perf_counter() - t0) * 1000.0)
    return times


# -- the profile ---------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def profile_model(model: nn.Module, example_input: Any, device: str | torch.device = "cpu", threads: int | None = None,
                  warmup: int = 5, repeats: int = 30) -> dict[str, Any]:
    """Profile ``model`` on ``example_input`` (a tensor, a tuple of positional inputs, or a dict
    of keyword inputs); see the module docstring for the keys. The model is run in eval mode
    on ``device`` and handed back in its previous mode on its previous device."""
    if repeats < MIN_REPEATS:
        raise ValueError(f"repeats must be >= {MIN_REPEATS} for a stable median and p90, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    dev = resolve_device(device)
    first = next(iter(model.parameters()), None)
    home_device = first.device if first is not None else None
    was_training = model.training
    old_threads = torch.get_num_threads()
    used_threads = int(threads) if threads is not None else old_threads
    if used_threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    try:
        if dev.type == "cpu":
            torch.set_num_threads(used_threads)
        model.eval()
        model.to(dev)
        inputs = move_to_device(example_input, dev)
        out: dict[str, Any] = {
            "device": str(dev),
            "device_name": device_name(dev),
            "torch": torch.__version__,
            "threads": used_threads if dev.type == "cpu" else None,
            "input_shapes": [list(t.shape) for t in _tensors(inputs)],
            "dtype": str(first.dtype).removeprefix("torch.") if first is not None else None,
        }
        out.update(count_parameters(model))
        out["storage_bytes"] = storage_bytes(model)
        flops = count_flops(model, inputs)  # doubles as the first warm-up pass
        out["flops"] = flops
        out["macs"] = flops // 2
        peak, method = activation_peak_bytes(model, inputs, dev)
        out["activation_peak_bytes"] = peak
        out["activation_method"] = method
        times = measure_latency(model, inputs, dev, warmup=warmup, repeats=repeats)
        out.update({
            "latency_median_ms": float(statistics.median(times)),
            "latency_p90_ms": float(np.percentile(times, 90)),
            "latency_mean_ms": float(statistics.fmean(times)),
            "latency_min_ms": float(min(times)),
            "latency_max_ms": float(max(times)),
            "warmup": int(warmup),
            "repeats": int(repeats),
        })
        return out
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
        if home_device is not None and home_device != dev:
            model.to(home_device)


#: profile keys compared by `compare_profiles` (teacher / student: > 1 means the student is smaller or faster)
COMPARED = ("parameters", "storage_bytes", "parameter_bytes", "activation_peak_bytes", "macs", "flops",
            "latency_median_ms", "latency_p90_ms")


def compare_profiles(teacher: Mapping[str, Any], student: Mapping[str, Any]) -> dict[str, Any]:
    """Ratios ``teacher / student`` for size, memory, compute and latency (``None`` where the
    student's value is 0 or missing). ``same_conditions`` says whether both were measured on the
    same device, thread count and torch version: latency ratios mean little otherwise."""
    ratios: dict[str, Any] = {}
    for key in COMPARED:
        t, s = teacher.get(key), student.get(key)
        if t is None or s is None or not s or not math.isfinite(float(s)):
            ratios[key] = None
        else:
            ratios[key] = float(t) / float(s)
    conditions = ("device", "device_name", "threads", "torch")
    ratios["same_conditions"] = all(teacher.get(k) == student.get(k) for k in conditions)
    ratios["direction"] = "teacher / student (> 1: the student is smaller or faster)"
    return ratios
