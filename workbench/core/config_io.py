"""Config from TOML and ``--set key=value`` overrides, validated against the pipeline's model.

Every error names the key (or the file) so the CLI prints one readable line and exits 2.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from workbench.api import ConfigError, InputError, Plugin, PipelineSpec, component_fields


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None


def parse_value(text: str) -> Any:
    """A TOML value when it parses as one (numbers, booleans, arrays), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got {item!r}", key="--set")
        key, text = item.split("=", 1)
        node = data
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError("is not a table", key=part)
        node[leaf] = parse_value(text.strip())
    return data


def validate_config(plugin: Plugin, spec: PipelineSpec, data: dict[str, Any]) -> BaseModel:
    try:
        config = spec.config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    registry = plugin.registry()
    for name, kind in component_fields(spec.config).items():
        value = getattr(config, name)
        for key in value if isinstance(value, (list, tuple)) else [value]:
            if key not in registry.keys(kind):
                raise ConfigError(f"unknown {kind[:-1]} {key!r} (known: {', '.join(registry.keys(kind))})", key=name)
    return config


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"{key}: {msg}")
    return "; ".join(lines)


def build_config(plugin: Plugin, spec: PipelineSpec, config_file: str | None = None, overrides: list[str] = (), base: dict | None = None) -> BaseModel:  # type: ignore[assignment]
    data = dict(base or {})
    if config_file:
        data.update(read_toml(config_file))
    data = apply_overrides(data, list(overrides))
    return validate_config(plugin, spec, data)
