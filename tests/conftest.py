import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def cli_env(wb_home):
    """Environment for `workbench` subprocesses: temporary home, tiny plugin enabled."""
    env = dict(os.environ)
    env["WORKBENCH_HOME"] = str(wb_home)
    env["WORKBENCH_EXTRA_PLUGINS"] = "workbench.testing.tiny:plugin"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def workbench_cmd():
    exe = VENV_BIN / "workbench"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "workbench.cli.main"]
