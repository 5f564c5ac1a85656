"""pytest plugin (entry point ``pytest11``): a temporary home and store, a plugin manager
without discovery, and the tiny plugin. Plugin authors get these fixtures for free."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def wb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "wb-home"
    home.mkdir()
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home


@pytest.fixture
def tiny_plugin():
    from workbench.testing.tiny import plugin

    return plugin


@pytest.fixture
def wb_session(wb_home: Path, tiny_plugin):
    """A session on a temporary home whose only plugin is the tiny one (no discovery)."""
    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session

    session = Session.open(wb_home, PluginManager.from_plugins(tiny_plugin))
    yield session
    for job in session.engine.jobs.values():
        if not job.done:
            job.cancel(grace_s=1)
            job.wait(10)
    session.store.close()
