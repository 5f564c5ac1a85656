"""Base of every pipeline config model, and the field helpers plugins use.

The GUI builds its forms from these models (title, description, bounds, choices) and the
CLI reads them from TOML, so everything a form needs must be in the model's JSON schema.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PipelineConfig(BaseModel):
    """Unknown keys are errors; assignments are validated (the GUI edits models in place)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = Field(0, ge=0, description="Random seed; a run is reproducible from it.")
    device: str = Field(
        "auto",
        description="Where to compute: auto (CUDA when present), cpu, cuda, cuda:N.",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
    )


def component_field(kind: str, default: str, description: str = "", **kw: Any) -> Any:
    """A string field naming a registered component of `kind` (checked by the host)."""
    extra = {"component_kind": kind}
    return Field(default, description=description, json_schema_extra=extra, **kw)


def component_fields(model: type[BaseModel]) -> dict[str, str]:
    """field name -> component kind, for every field declared with `component_field`."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "component_kind" in extra:
            out[name] = str(extra["component_kind"])
    return out
