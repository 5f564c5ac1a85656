"""Reach intermediate layers without editing a model: forward hooks by module name.

    with FeatureCapture(teacher, ["layer3", "head.0"]) as feats:
        teacher(x)
    feats["layer3"]  # the output of teacher.layer3 in that forward

Names are those of ``model.named_modules()``. Hooks are removed when the ``with`` block
ends (or on `remove`). Each forward overwrites the previous capture of a layer; `clear`
forgets them all.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Iterator, Literal

import torch
from torch import nn


class FeatureCapture:
    def __init__(self, model: nn.Module, names: Iterable[str], *, detach: bool = False,
                 capture: Literal["output", "input"] = "output"):
        if capture not in ("output", "input"):
            raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
        self.model, self.detach, self.capture = model, detach, capture
        self.names = list(dict.fromkeys(names))
        modules = dict(model.named_modules())
        for name in self.names:
            if name not in modules:
                close = difflib.get_close_matches(name, [n for n in modules if n], n=3)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise KeyError(f"{type(model).__name__} has no submodule {name!r}{hint}")
        self._modules = {name: modules[name] for name in self.names}
        self._handles: list[Any] = []
        self.features: dict[str, Any] = {}

    # -- registration ----------------------------------------------------------
    def register(self) -> "FeatureCapture":
        if self._handles:
            return self
        for name, module in self._modules.items():
            if self.capture == "output":
                hook = module.register_forward_hook(self._output_hook(name))
            else:
                hook = module.register_forward_pre_hook(self._input_hook(name))
            self._handles.append(hook)
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> "FeatureCapture":
        return self.register()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- access ------------------------------------------------------------------
    def clear(self) -> None:
        self.features.clear()

    def __getitem__(self, name: str) -> Any:
        if name not in self.features:
            if name in self._modules:
                raise KeyError(f"{name!r} has not run yet (no forward since the hook was registered)")
            raise KeyError(f"{name!r} is not captured (captured: {self.names})")
        return self.features[name]

    def __contains__(self, name: object) -> bool:
        return name in self.features

    def __iter__(self) -> Iterator[str]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def items(self):
        return self.features.items()

    # -- hooks -------------------------------------------------------------------
    def _keep(self, value: Any) -> Any:
        if not self.detach:
            return value
        if isinstance(value, torch.Tensor):
            return value.detach()
        if isinstance(value, (tuple, list)):
            return type(value)(self._keep(v) for v in value)
        if isinstance(value, dict):
            return {k: self._keep(v) for k, v in value.items()}
        return value

    def _output_hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.features[name] = self._keep(output)

        return hook

    def _input_hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            self.features[name] = self._keep(args[0] if len(args) == 1 else args)

        return hook


def capture_features(model: nn.Module, names: Iterable[str], *inputs: Any, detach: bool = True,
                     **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Run ``model(*inputs, **kwargs)`` once and return ``(output, {name: feature})``."""
    with FeatureCapture(model, names, detach=detach) as feats:
        out = model(*inputs, **kwargs)
    return out, dict(feats.features)
