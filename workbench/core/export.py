"""Export a trained model to ONNX or TorchScript and check the file reproduces PyTorch.

`export_model` runs on the CPU, writes the file, loads it back with the runtime a user would
use (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript), feeds it the example input
and compares with the PyTorch model's outputs. A difference above ``atol`` raises
`ExportCheckError` (and the file is removed: a wrong model is never left behind).

ONNX: the TorchScript-based ("legacy") exporter of torch 2.11 is tried first — fast and a
single file; it is deprecated upstream, so when it fails or is gone the torch.export-based
exporter (``dynamo=True``, needs onnxscript) is used, asked for a single file as well.
``exporter="legacy" | "dynamo"`` forces one. TorchScript: ``torch.jit.trace``, falling back
to ``torch.jit.script`` when tracing fails (both deprecated upstream but working in 2.11).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from workbench.api import WorkbenchError

DEFAULT_OPSET = 17


class ExportError(WorkbenchError):
    """The model could not be exported in the requested format."""


class ExportCheckError(ExportError):
    """The exported file's outputs differ from PyTorch's by more than the tolerance."""

    def __init__(self, message: str, max_abs_diff: float):
        self.max_abs_diff = max_abs_diff
        super().__init__(message)


@contextlib.contextmanager
def _quiet():
    """Silence the deprecation chatter and progress prints of the exporters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        warnings.filterwarnings("ignore", message=".*is deprecated.*")
        # a failed first exporter prints its IR graph and a traceback before the next one is
        # tried; the errors that matter are raised and reported, so keep the console clean
        loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), _native_quiet():
                yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


@contextlib.contextmanager
def _native_quiet():
    """The legacy exporter's C++ side prints its graph dump straight to file descriptor 1,
    past Python's sys.stdout: point descriptors 1 and 2 at a scratch file meanwhile."""
    import os
    import sys
    import tempfile

    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no console descriptors (e.g. a windowed app): nothing to silence
        yield
        return
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _as_args(example_input: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    if isinstance(example_input, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example_input):
        return tuple(example_input)
    raise TypeError("example_input must be a tensor or a tuple of tensors (positional inputs)")


def _outputs(out: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(out)
    tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
    if not tensors:
        raise ExportError("the model returns no tensors")
    return tensors


def _max_abs_diff(expected: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> float:
    if len(expected) != len(got):
        raise ExportCheckError(f"the exported model returns {len(got)} outputs, PyTorch {len(expected)}", float("inf"))
    worst = 0.0
    for i, (e, g) in enumerate(zip(expected, got)):
        g = np.asarray(g)
        if tuple(e.shape) != tuple(g.shape):
            raise ExportCheckError(f"output {i}: shape {tuple(g.shape)} from the export, {tuple(e.shape)} from PyTorch",
                                   float("inf"))
        if e.size == 0:
            continue
        diff = np.abs(e.astype(np.float64) - g.astype(np.float64))
        worst = max(worst, float(np.nanmax(diff)) if not np.isnan(diff).all() else float("inf"))
        if np.isnan(diff).any() and not np.array_equal(np.isnan(e), np.isnan(g)):
            worst = float("inf")
    return worst


def _files_of(path: Path) -> list[Path]:
    extra = Path(str(path) + ".data")  # external weights of the dynamo exporter
    return [p for p in (path, extra) if p.exists()]


def _remove(path: Path) -> None:
    for p in _files_of(path):
        p.unlink(missing_ok=True)


def _export_onnx(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, opset: int, exporter: str,
                 dynamic_batch: bool) -> str:
    input_names = [f"input_{i}" for i in range(len(args))] if len(args) > 1 else ["input"]
    with torch.no_grad():
        n_out = len(_outputs(model(*args)))
    output_names = [f"output_{i}" for i in range(n_out)] if n_out > 1 else ["output"]
    dynamic_axes = {name: {0: "batch"} for name in (*input_names, *output_names)} if dynamic_batch else None
    errors: list[str] = []
    order = {"auto": ("legacy", "dynamo"), "legacy": ("legacy",), "dynamo": ("dynamo",)}[exporter]
    for kind in order:
        _remove(path)
        try:
            with _quiet():
                if kind == "legacy":
                    torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                                      input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                                      do_constant_folding=True)
                else:
                    shapes = tuple({0: torch.export.Dim("batch")} for _ in args) if dynamic_batch else None
                    torch.onnx.export(model, args, str(path), dynamo=True, opset_version=opset,
                                      input_names=input_names, output_names=output_names, dynamic_shapes=shapes,
                                      external_data=False, verbose=False)
            return kind
        except Exception as exc:  # noqa: BLE001 - try the next exporter, report all
            errors.append(f"{kind}: {type(exc).__name__}: {exc}")
    _remove(path)
    raise ExportError("ONNX export failed (" + "; ".join(errors) + ")")


def _run_onnx(path: Path, args: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an ONNX export needs onnxruntime (pip install 'distillation-workbench[export]')") \
            from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    return list(session.run(None, feeds))


def _export_torchscript(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path) -> str:
    errors = []
    for kind in ("trace", "script"):
        try:
            with _quiet(), torch.no_grad():
                scripted = torch.jit.trace(model, args) if kind == "trace" else torch.jit.script(model)
                scripted.save(str(path))
            return kind
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{kind}: {type(exc).__name__}: {exc}")
    path.unlink(missing_ok=True)
    raise ExportError("TorchScript export failed (" + "; ".join(errors) + ")")


def _run_torchscript(path: Path, args: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with _quiet(), torch.no_grad():
        loaded = torch.jit.load(str(path), map_location="cpu")
        loaded.eval()
        return [t.detach().numpy() for t in _outputs(loaded(*args))]


def export_model(model: nn.Module, example_input: Any, path: str | Path,
                 format: Literal["onnx", "torchscript"] = "onnx", check: bool = True, atol: float = 1e-4, *,
                 reference: nn.Module | None = None, opset: int = DEFAULT_OPSET,
                 exporter: Literal["auto", "legacy", "dynamo"] = "auto", dynamic_batch: bool = False) -> dict[str, Any]:
    """Export ``model`` (eval mode, on the CPU) to ``path`` and, with ``check``, verify it.

    ``example_input``: a tensor or a tuple of positional tensors. ``reference``: the module
    whose PyTorch outputs the file must reproduce (default: ``model`` itself).
    ``dynamic_batch`` (ONNX): axis 0 of every input and output is left symbolic.
    Returns ``{path, bytes, format, max_abs_diff, atol, checked, exporter, opset}``;
    ``max_abs_diff`` is None without ``check``. Raises `ExportCheckError` when the difference
    exceeds ``atol`` (the file is removed) and `ExportError` when exporting fails.
    """
    if format not in ("onnx", "torchscript"):
        raise ExportError(f"unknown export format {format!r} (onnx, torchscript)")
    if exporter not in ("auto", "legacy", "dynamo"):
        raise ExportError(f"unknown ONNX exporter {exporter!r} (auto, legacy, dynamo)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(t.detach().cpu() for t in _as_args(example_input))
    reference = model if reference is None else reference
    restore = []
    for module in {id(m): m for m in (model, reference)}.values():
        first = next(iter(module.parameters()), None)
        restore.append((module, module.training, first.device if first is not None else None))
        module.eval()
        module.cpu()
    try:
        if format == "onnx":
            used = _export_onnx(model, args, path, opset, exporter, dynamic_batch)
        else:
            used = _export_torchscript(model, args, path)
        result: dict[str, Any] = {
            "path": str(path),
            "bytes": int(sum(p.stat().st_size for p in _files_of(path))),
            "format": format,
            "exporter": used,
            "opset": opset if format == "onnx" else None,
            "atol": float(atol),
            "checked": bool(check),
            "max_abs_diff": None,
        }
        if check:
            with torch.no_grad():
                expected = [t.detach().cpu().numpy() for t in _outputs(reference(*args))]
            try:
                got = _run_onnx(path, args) if format == "onnx" else _run_torchscript(path, args)
                diff = _max_abs_diff(expected, got)
            except ExportCheckError as exc:
                _remove(path)
                raise ExportCheckError(f"{path}: exported {format} model does not match PyTorch: {exc}",
                                       exc.max_abs_diff) from None
            except Exception:
                _remove(path)
                raise
            if not diff <= atol:
                _remove(path)
                raise ExportCheckError(
                    f"{path}: exported {format} model does not match PyTorch: max |difference| {diff:.3g} "
                    f"> atol {atol:g} (file removed)", diff)
            result["max_abs_diff"] = diff
        return result
    finally:
        for module, training, device in restore:
            module.train(training)
            if device is not None and device.type != "cpu":
                module.to(device)


def quantize_dynamic_int8(model: nn.Module, layers: tuple[type[nn.Module], ...] = (nn.Linear,)) -> nn.Module:
    """A copy of ``model`` with ``layers`` dynamically quantized to int8 (weights int8,
    activations quantized on the fly) for CPU inference; ``model`` is left untouched.

    Uses ``torch.ao.quantization.quantize_dynamic`` (deprecated upstream in favour of torchao,
    still present in torch 2.11). The result runs on the CPU and exports to TorchScript.
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        raise ExportError(f"dynamic int8 quantization is not available in torch {torch.__version__}") from None
    clone = copy.deepcopy(model).cpu().eval()
    with _quiet():
        return quantize_dynamic(clone, set(layers), dtype=torch.qint8)
