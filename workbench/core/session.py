"""One place that opens the home, the store, the plugins and the engine for a front end."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.api import WorkbenchError, load_target

from .engine import Engine
from .paths import home as default_home
from .plugins import PluginManager
from .store import Store


@dataclass
class Session:
    home: Path
    store: Store
    plugins: PluginManager
    engine: Engine

    @classmethod
    def open(cls, home: Path | None = None, plugins: PluginManager | None = None) -> "Session":
        home = Path(home) if home else default_home()
        store = Store(home / "workbench.sqlite")
        return cls(home, store, plugins or PluginManager.discover(), Engine(store, home))

    def run_dir(self, run_id: str) -> Path:
        return self.home / "runs" / run_id

    # -- models of a finished run (profile, export) --------------------------------------
    def build_models(self, run_id: str, names: list[str] | None = None) -> tuple[dict, list[tuple[str, Any, Any]]]:
        run = self.store.get_run(run_id)
        plugin = self.plugins.get(run["plugin"])
        target = plugin.profile_target(run["pipeline"])
        if target is None:
            raise WorkbenchError(f"pipeline {run['plugin']}.{run['pipeline']} declares no models to profile or export")
        if run["status"] != "completed":
            raise WorkbenchError(f"run {run['id']} is {run['status']}, not completed")
        build = load_target(target.build)
        built = []
        for name in names or list(target.models):
            if name not in target.models:
                raise WorkbenchError(f"run {run['id']} has no model {name!r} (models: {', '.join(target.models)})")
            model, example = build(self.run_dir(run["id"]), run["config"], name)
            built.append((name, model, example))
        return run, built

    def profile(self, run_id: str, device: str = "cpu", threads: int | None = None, repeats: int = 30) -> dict[str, Any]:
        from .profiling import profile_model

        run, built = self.build_models(run_id)
        out: dict[str, Any] = {}
        for name, model, example in built:
            out[name] = profile_model(model, example, device=device, threads=threads, repeats=repeats)
            for metric in ("parameters", "storage_bytes", "activation_peak_bytes", "macs", "latency_median_ms", "latency_p90_ms"):
                if metric in out[name]:
                    self.store.add_evaluation(run["id"], name, metric, float(out[name][metric]), criteria=f"profile {device}")
        return out

    def export(self, run_id: str, fmt: str, model_name: str | None = None, output: str | None = None) -> dict[str, Any]:
        from .export import export_model
        from .worker import sha256_of

        run = self.store.get_run(run_id)
        target = self.plugins.get(run["plugin"]).profile_target(run["pipeline"])
        exportable = list(target.exportable) if target else []
        name = model_name or (exportable[0] if exportable else None)
        if name is None or name not in exportable:
            raise WorkbenchError(f"run {run['id']} has no exportable model {name!r} (exportable: {', '.join(exportable) or 'none'})")
        _, [(name, model, example)] = self.build_models(run_id, [name])
        suffix = ".onnx" if fmt == "onnx" else ".pt"
        path = Path(output) if output else self.run_dir(run["id"]) / "export" / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        result = export_model(model, example, path, format=fmt)
        self.store.add_artifact(run["id"], f"export-{fmt}", str(path.resolve()), path.stat().st_size, sha256_of(path),
                                {"model": name, "max_abs_diff": result.get("max_abs_diff")})
        return {**result, "model": name, "path": str(path), "bytes": path.stat().st_size}
