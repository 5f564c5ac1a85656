"""The plugin manifest: what a plugin contributes, declared without importing its code.

A plugin's entry point (group ``workbench.plugins``) names a `Plugin` object in a light
module that imports only this API and pydantic. Heavy code (torch models, Qt views, CLI
commands) is referenced by ``"module:attribute"`` strings and imported only when used.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from .errors import DuplicateComponentError, PluginError, UnknownComponentError
from .flow import FlowSpec

#: Bumped when the contract changes incompatibly. A plugin declares the version it targets.
API_VERSION = 1

COMPONENT_KINDS = ("teachers", "students", "datasets", "samplers", "reductions", "losses", "metrics")

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_ID = re.compile(r"^[a-z][a-z0-9_-]*$")


def load_target(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    if not _TARGET.match(target):
        raise PluginError(f"bad target {target!r}: expected 'module:attribute'")
    module_name, attr = target.split(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class PipelineSpec:
    id: str
    title: str
    config: type[BaseModel]
    run: str  # "module:function", a generator function run(config, ctx)
    description: str = ""
    status: Literal["ready", "planned"] = "ready"  # "planned": declared, not built yet
    resumable: bool = False
    #: settings for a tiny smoke run: the contract tests run every ready pipeline with them
    smoke: dict[str, Any] | None = None


@dataclass(frozen=True)
class ComponentSpec:
    kind: str  # one of COMPONENT_KINDS
    key: str
    target: str  # "module:attr": a factory or class
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class ViewSpec:
    id: str
    title: str
    accepts: tuple[str, ...]  # artifact kinds
    factory: str  # "module:attr": callable(run_record, artifacts, parent) -> QWidget


@dataclass(frozen=True)
class ProfileTargetSpec:
    """For a finished run of `pipeline`: build(run_dir, config, name) -> (model, example_input)."""

    pipeline: str
    build: str
    models: tuple[str, ...] = ("student",)
    exportable: tuple[str, ...] = ("student",)


@dataclass(frozen=True)
class DemoSpec:
    pipeline: str
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass
class Plugin:
    name: str
    title: str
    version: str
    api_version: int = API_VERSION
    description: str = ""
    pipelines: list[PipelineSpec] = field(default_factory=list)
    components: list[ComponentSpec] = field(default_factory=list)
    views: list[ViewSpec] = field(default_factory=list)
    profile_targets: list[ProfileTargetSpec] = field(default_factory=list)
    #: "module:function" main(argv, host) -> int, reached as ``workbench <name> ...``
    cli: str | None = None
    demo: DemoSpec | None = None
    #: guided flows (teacher → data → sampling → student → distill → inspect), one per pipeline;
    #: optional, so plugins written before flows existed keep working unchanged
    flows: list[FlowSpec] = field(default_factory=list)

    # -- lookups ---------------------------------------------------------------
    def pipeline(self, pipeline_id: str) -> PipelineSpec:
        for p in self.pipelines:
            if p.id == pipeline_id:
                return p
        known = ", ".join(p.id for p in self.pipelines)
        raise PluginError(f"plugin {self.name!r} has no pipeline {pipeline_id!r} (known: {known})")

    def profile_target(self, pipeline_id: str) -> ProfileTargetSpec | None:
        return next((t for t in self.profile_targets if t.pipeline == pipeline_id), None)

    def flow(self, pipeline_id: str) -> FlowSpec | None:
        return next((f for f in self.flows if f.pipeline == pipeline_id), None)

    def registry(self) -> "Registry":
        return Registry(self.components)

    def validate(self) -> None:
        """Contract checks run at discovery; a failure marks the plugin broken."""
        if not _ID.match(self.name):
            raise PluginError(f"plugin name {self.name!r} must match {_ID.pattern}")
        if self.api_version != API_VERSION:
            raise PluginError(
                f"plugin {self.name!r} targets API version {self.api_version}, host has {API_VERSION}"
            )
        seen: set[str] = set()
        for p in self.pipelines:
            if not _ID.match(p.id):
                raise PluginError(f"pipeline id {p.id!r} must match {_ID.pattern}")
            if p.id in seen:
                raise PluginError(f"duplicate pipeline id {p.id!r}")
            seen.add(p.id)
            if not (isinstance(p.config, type) and issubclass(p.config, BaseModel)):
                raise PluginError(f"pipeline {p.id!r}: config must be a pydantic model class")
            if not _TARGET.match(p.run):
                raise PluginError(f"pipeline {p.id!r}: run target {p.run!r} is not 'module:attr'")
        self.registry()  # raises on duplicate keys / unknown kinds
        for t in self.profile_targets:
            if t.pipeline not in seen:
                raise PluginError(f"profile target names unknown pipeline {t.pipeline!r}")
        if self.demo and self.demo.pipeline not in seen:
            raise PluginError(f"demo names unknown pipeline {self.demo.pipeline!r}")
        flow_pipelines: set[str] = set()
        for flow in self.flows:
            if flow.pipeline in flow_pipelines:
                raise PluginError(f"two flows for pipeline {flow.pipeline!r}")
            flow_pipelines.add(flow.pipeline)
            fields = list(self.pipeline(flow.pipeline).config.model_fields) if flow.pipeline in seen else []
            problems = flow.problems(fields, seen)
            if problems:
                raise PluginError("; ".join(problems))


class Registry:
    """Components by kind and key. Duplicate keys and unknown kinds are contract errors."""

    def __init__(self, components: list[ComponentSpec] = ()):  # type: ignore[assignment]
        self._by_kind: dict[str, dict[str, ComponentSpec]] = {k: {} for k in COMPONENT_KINDS}
        for c in components:
            self.add(c)

    def add(self, spec: ComponentSpec) -> None:
        if spec.kind not in self._by_kind:
            raise PluginError(f"unknown component kind {spec.kind!r} (kinds: {', '.join(COMPONENT_KINDS)})")
        table = self._by_kind[spec.kind]
        if spec.key in table:
            raise DuplicateComponentError(f"duplicate {spec.kind} key {spec.key!r}")
        table[spec.key] = spec

    def keys(self, kind: str) -> list[str]:
        return list(self._by_kind.get(kind, {}))

    def spec(self, kind: str, key: str) -> ComponentSpec:
        table = self._by_kind.get(kind, {})
        if key not in table:
            raise UnknownComponentError(kind, key, list(table))
        return table[key]

    def get(self, kind: str, key: str) -> Any:
        """Import and return the component (factory or class)."""
        return load_target(self.spec(kind, key).target)


@dataclass(frozen=True)
class CliHost:
    """What the host hands a plugin's CLI entry ``main(argv, host) -> int``."""

    home: Any  # pathlib.Path of the workbench home
    prog: str  # e.g. "workbench sea"
