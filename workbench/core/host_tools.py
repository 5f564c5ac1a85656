"""The host's measuring tools offered to pipelines through their `RunContext`
(`profile`, `export`): plugins may not import `workbench.core`, yet must be measured and
exported exactly as the CLI's ``workbench profile`` / ``workbench export`` do."""
from __future__ import annotations

from pathlib import Path
from typing import Any


class HostTools:
    """Mixin for RunContext implementations."""

    def profile(self, model: Any, example_input: Any, **options: Any) -> dict[str, Any]:
        from .profiling import profile_model

        return profile_model(model, example_input, **options)

    def export(self, model: Any, example_input: Any, path: str | Path, format: str, **options: Any) -> dict[str, Any]:  # noqa: A002
        from .export import export_model

        return export_model(model, example_input, path, format=format, **options)
