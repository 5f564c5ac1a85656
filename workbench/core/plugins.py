"""Plugin discovery: one result per plugin, so a broken plugin never takes the host down.

Plugins are found through the ``workbench.plugins`` entry point group, plus targets listed
in ``WORKBENCH_EXTRA_PLUGINS`` (comma separated ``module:attr``; used by tests and during
plugin development). Only the light manifest module is imported here.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata

from workbench.api import Plugin, PluginError, load_target

GROUP = "workbench.plugins"


@dataclass
class PluginResult:
    name: str
    source: str  # distribution name or the extra target
    target: str
    plugin: Plugin | None = None
    error: str = ""
    detail: str = ""  # traceback, shown one click away

    @property
    def ok(self) -> bool:
        return self.plugin is not None


@dataclass
class PluginManager:
    results: list[PluginResult] = field(default_factory=list)

    @classmethod
    def discover(cls) -> "PluginManager":
        found: list[tuple[str, str, str]] = []
        for ep in metadata.entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist else "?"
            found.append((ep.name, dist, ep.value))
        for target in filter(None, os.environ.get("WORKBENCH_EXTRA_PLUGINS", "").split(",")):
            found.append((target.split(":")[0].rsplit(".", 1)[-1], "WORKBENCH_EXTRA_PLUGINS", target.strip()))
        return cls([_load(name, source, target) for name, source, target in found])

    @classmethod
    def from_plugins(cls, *plugins: Plugin) -> "PluginManager":
        """A manager without discovery (tests)."""
        results = []
        for p in plugins:
            res = PluginResult(p.name, "direct", "", plugin=p)
            try:
                p.validate()
            except Exception as exc:  # noqa: BLE001 - reported, never raised
                res.plugin, res.error = None, str(exc)
            results.append(res)
        return cls(results)

    @property
    def plugins(self) -> dict[str, Plugin]:
        return {r.name: r.plugin for r in self.results if r.plugin is not None}

    @property
    def broken(self) -> list[PluginResult]:
        return [r for r in self.results if not r.ok]

    def get(self, name: str) -> Plugin:
        for r in self.results:
            if r.name == name:
                if r.plugin is None:
                    raise PluginError(f"plugin {name!r} is broken: {r.error}")
                return r.plugin
        raise PluginError(f"no plugin named {name!r} (installed: {', '.join(r.name for r in self.results) or 'none'})")

    def resolve(self, qualified: str) -> tuple[Plugin, "object"]:
        """'sea.distill' -> (plugin, pipeline spec)."""
        if "." not in qualified:
            raise PluginError(f"expected PLUGIN.PIPELINE, got {qualified!r}")
        name, pipeline_id = qualified.split(".", 1)
        plugin = self.get(name)
        return plugin, plugin.pipeline(pipeline_id)


def _load(name: str, source: str, target: str) -> PluginResult:
    res = PluginResult(name=name, source=source, target=target)
    try:
        obj = load_target(target)
        plugin = obj() if callable(obj) and not isinstance(obj, Plugin) else obj
        if not isinstance(plugin, Plugin):
            raise PluginError(f"{target} is a {type(plugin).__name__}, not a workbench.api.Plugin")
        if plugin.name != name and source != "WORKBENCH_EXTRA_PLUGINS":
            raise PluginError(f"entry point {name!r} provides a plugin named {plugin.name!r}")
        res.name = plugin.name
        plugin.validate()
        res.plugin = plugin
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not raised
        res.error = f"{type(exc).__name__}: {exc}"
        res.detail = traceback.format_exc()
    return res
