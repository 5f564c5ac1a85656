"""Save and load a dose network as safetensors + JSON metadata (never executes code).

``teacher.safetensors`` holds the weights; ``teacher.json`` beside it::

    {"format": "workbench-vmat-model/1", "role": "teacher",
     "architecture": {ModelSpec fields}, "normalisation": {Normalisation fields},
     "grid": {"spacing_mm": [dz, dy, dx], "patch_size": 32, "multiple": 4},
     "parameters": 625665, "training": {...free-form...}}

Loading rebuilds the architecture from the JSON and loads the tensors strictly; every
way a file can be unusable is a named `InputError` (`ModelFileError`) naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from workbench.api import InputError

from .models import ModelSpec, build_model, count_parameters
from .normalise import Normalisation

FORMAT = "workbench-vmat-model/1"


class ModelFileError(InputError):
    """A saved model (weights or metadata) is missing, corrupt or does not fit its architecture."""


@dataclass
class LoadedModel:
    model: nn.Module
    spec: ModelSpec
    normalisation: Normalisation
    grid: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def paths_of(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) for ``x.safetensors``, ``x.json`` or the stem ``x``."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_model(path: str | Path, model: nn.Module, spec: ModelSpec, normalisation: Normalisation, *,
               role: str = "teacher", grid: dict[str, Any] | None = None,
               training: dict[str, Any] | None = None) -> Path:
    """Write weights + metadata (each to a temporary name, then swapped in)."""
    from safetensors.torch import save_file

    weights, meta_path = paths_of(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "role": role, "architecture": spec.to_json(),
            "normalisation": normalisation.to_json(), "grid": dict(grid or {}),
            "parameters": count_parameters(model), "training": dict(training or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(weights) + ".tmp", metadata={"format": FORMAT})
    Path(str(meta_path) + ".tmp").write_text(json.dumps(meta, indent=1, allow_nan=False))
    Path(str(weights) + ".tmp").replace(weights)
    Path(str(meta_path) + ".tmp").replace(meta_path)
    return weights


def load_model(path: str | Path, *, role: str | None = None) -> LoadedModel:
    """Rebuild a network saved by `save_model` (eval mode, CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, meta_path = paths_of(path)
    if not weights.is_file():
        raise ModelFileError(weights, "model weights not found (expected a .safetensors file)")
    if not meta_path.is_file():
        raise ModelFileError(meta_path, "model metadata not found (a .json beside the weights, written with them)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(meta_path, f"metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(meta_path, f"not a workbench VMAT model (format {got!r}, expected {FORMAT!r})")
    if role is not None and meta.get("role") != role:
        raise ModelFileError(meta_path, f"holds a {meta.get('role')!r} model, expected a {role!r}")
    try:
        spec = ModelSpec.from_json(dict(meta["architecture"]))
        norm = Normalisation.from_json(dict(meta["normalisation"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(meta_path, f"bad architecture or normalisation: {exc}") from None
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(weights, f"cannot read the weights: {exc}") from None
    model = build_model(spec)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelFileError(weights, f"weights do not fit the architecture in {meta_path.name}: "
                             f"{' '.join(first[:3])[:400]}") from None
    model.eval()
    return LoadedModel(model, spec, norm, dict(meta.get("grid", {})), meta, weights)
