"""Nested training state <-> (safetensors-ready tensors, JSON skeleton). Never pickle.

`pack_state` walks any nesting of dict / list / tuple / scalars / str / None / bytes /
torch tensors / NumPy arrays and scalars (optimizer and scheduler ``state_dict()``s,
``random.getstate()``, ``np.random.get_state()``, a NumPy ``Generator``'s
``bit_generator.state``, ``torch.get_rng_state()`` ...). Every tensor goes into a flat
``dict[str, Tensor]`` that safetensors can store; everything else becomes a JSON-able
skeleton that records exact types (tuple vs list, int dict keys, NaN/inf, 128-bit ints),
so `unpack_state` gives back an equal object.

Skeleton encoding: ``None``, ``bool``, ``str``, ints with ``|x| < 2**53`` and finite floats
are themselves; lists are JSON lists; everything else is a tagged object ``{"__t": tag, ...}``.
Dicts are always tagged, so a user dict can never be mistaken for a tag.
"""
from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import torch

TAG = "__t"
_SAFE_INT = 2**53


def pack_state(obj: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split ``obj`` into ``(tensors, skeleton)``; tensor names start with ``prefix``.

    Tensors are neither copied nor moved (the checkpoint writer detaches and copies them
    to the CPU). The same tensor object reached twice is stored once and comes back as one
    object. Raises `TypeError` naming the path of anything it cannot represent.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}

    def name_for(path: list[str]) -> str:
        base = prefix + ".".join(path) if path else prefix + "value"
        name, n = base, 1
        while name in tensors:
            name, n = f"{base}~{n}", n + 1
        return name

    def walk(value: Any, path: list[str]) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, torch.Tensor):
            key = seen.get(id(value))
            if key is None:
                key = name_for(path)
                tensors[key] = value
                seen[id(value)] = key
            return {TAG: "tensor", "key": key}
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise TypeError(f"{_where(path)}: NumPy object arrays cannot be stored")
            key = name_for(path)
            raw = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
            tensors[key] = torch.from_numpy(raw.copy())
            return {TAG: "ndarray", "key": key, "dtype": value.dtype.str, "shape": list(value.shape)}
        if isinstance(value, np.generic):
            if isinstance(value, (np.void, np.object_)):
                raise TypeError(f"{_where(path)}: NumPy {type(value).__name__} scalars cannot be stored")
            return {TAG: "npscalar", "dtype": value.dtype.str, "v": walk(value.item(), path)}
        if isinstance(value, int):  # after bool
            if -_SAFE_INT < value < _SAFE_INT:
                return int(value)
            return {TAG: "int", "v": str(int(value))}
        if isinstance(value, float):
            if math.isfinite(value):
                return float(value)
            return {TAG: "float", "v": repr(float(value))}  # 'nan', 'inf', '-inf'
        if isinstance(value, complex):
            return {TAG: "complex", "v": [walk(value.real, path), walk(value.imag, path)]}
        if isinstance(value, (bytes, bytearray)):
            return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, torch.dtype):
            return {TAG: "torch_dtype", "v": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {TAG: "torch_device", "v": str(value)}
        if isinstance(value, dict):
            keys = list(value)
            if all(isinstance(k, str) for k in keys):
                return {TAG: "dict", "v": {k: walk(value[k], [*path, k]) for k in keys}}
            items = []
            for k in keys:
                if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
                    raise TypeError(f"{_where(path)}: dict key {k!r} of type {type(k).__name__} cannot be stored")
                items.append([walk(k, [*path, "<key>"]), walk(value[k], [*path, str(k)])])
            return {TAG: "dict", "items": items}
        if isinstance(value, tuple):  # includes torch.Size and named tuples (stored as tuples)
            return {TAG: "tuple", "v": [walk(v, [*path, str(i)]) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [walk(v, [*path, str(i)]) for i, v in enumerate(value)]
        raise TypeError(f"{_where(path)}: cannot store a {type(value).__module__}.{type(value).__qualname__}")

    return tensors, walk(obj, [])


def unpack_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Inverse of `pack_state`. ``tensors`` may hold extra entries (e.g. model weights)."""
    cache: dict[str, Any] = {}

    def tensor(key: str) -> torch.Tensor:
        if key not in tensors:
            raise KeyError(f"checkpoint is missing tensor {key!r}")
        return tensors[key]

    def walk(node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict) or TAG not in node:
            raise ValueError(f"malformed state skeleton node: {node!r:.80}")
        tag = node[TAG]
        if tag == "dict":
            if "v" in node:
                return {k: walk(v) for k, v in node["v"].items()}
            return {walk(k): walk(v) for k, v in node["items"]}
        if tag == "tuple":
            return tuple(walk(v) for v in node["v"])
        if tag == "tensor":
            key = node["key"]
            if key not in cache:
                cache[key] = tensor(key)
            return cache[key]
        if tag == "ndarray":
            raw = tensor(node["key"]).detach().cpu().contiguous().numpy().astype(np.uint8, copy=False)
            return raw.view(np.dtype(node["dtype"])).reshape(node["shape"]).copy()
        if tag == "npscalar":
            return np.dtype(node["dtype"]).type(walk(node["v"]))
        if tag == "int":
            return int(node["v"])
        if tag == "float":
            return float(node["v"])
        if tag == "complex":
            real, imag = (walk(v) for v in node["v"])
            return complex(real, imag)
        if tag == "bytes":
            return base64.b64decode(node["v"])
        if tag == "torch_dtype":
            return getattr(torch, node["v"])
        if tag == "torch_device":
            return torch.device(node["v"])
        raise ValueError(f"unknown state skeleton tag {tag!r}")

    return walk(skeleton)


def storage_safe(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, no two sharing storage (safetensors refuses shared
    storage, e.g. tied weights). A tensor is copied only when it has to be."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, value in tensors.items():
        t = value.detach().cpu().contiguous()
        if t.untyped_storage().nbytes() and t.untyped_storage().data_ptr() in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _where(path: list[str]) -> str:
    return "state" + "".join(f"[{p!r}]" for p in path)
