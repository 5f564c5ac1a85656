"""Where the workbench keeps its store, artifacts and caches."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """`WORKBENCH_HOME`, else the platform's user data directory."""
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("distillation-workbench", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir(home_dir: Path, run_id: str) -> Path:
    return home_dir / "runs" / run_id
