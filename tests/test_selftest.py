"""`workbench --selftest` from source, on the tiny plugin (the real plugins' smoke runs take
a minute: `-m slow` runs the whole command)."""
from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.core.plugins import PluginManager, PluginResult
from workbench.selftest import main as selftest


def _with_smoke(plugin, **smoke):
    spec = dataclasses.replace(plugin.pipelines[0], smoke={**plugin.pipelines[0].smoke, **smoke})
    return dataclasses.replace(plugin, pipelines=[spec])


def test_runs_each_smoke_pipeline_in_a_temporary_home_and_opens_the_window(tiny_plugin, wb_home, qapp):
    out = io.StringIO()
    code = selftest(manager=PluginManager.from_plugins(tiny_plugin), out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "ok    qt window" in text and "1 plugins in the tree" in text
    assert "ok    tiny.fit" in text and "completed" in text
    assert "self-test passed: 3 checks" in text
    temp_home = Path(text.split("temporary home ")[1].split()[0])
    assert not temp_home.exists(), "the temporary home is deleted afterwards"
    assert os.environ["WORKBENCH_HOME"] == str(wb_home), "the caller's home is restored"
    assert not (wb_home / "workbench.sqlite").exists(), "the user's own store is never touched"


def test_a_failing_pipeline_fails_the_selftest_and_says_why(tiny_plugin, wb_home):
    broken_run = _with_smoke(tiny_plugin, fail_at_epoch=0)
    out = io.StringIO()
    code = selftest(manager=PluginManager.from_plugins(broken_run), gui=False, out=out)
    text = out.getvalue()
    assert code == 1, text
    assert "FAIL  tiny.fit" in text and "failed" in text
    assert "self-test FAILED (tiny.fit)" in text


def test_missing_or_broken_plugins_fail_before_anything_runs(tiny_plugin, wb_home):
    manager = PluginManager.from_plugins(tiny_plugin)
    manager.results.append(PluginResult("shaky", "shaky-dist", "shaky:plugin", error="ImportError: no module shaky"))
    out = io.StringIO()
    code = selftest(expect=["tiny", "sea"], manager=manager, out=out)
    text = out.getvalue()
    assert code == 1
    assert "shaky is broken: ImportError" in text
    assert "sea was not found" in text
    assert "tiny.fit" not in text, "no pipeline runs when discovery is wrong"


def test_ready_pipeline_without_smoke_config_is_a_failure(tiny_plugin, wb_home):
    no_smoke = dataclasses.replace(tiny_plugin, pipelines=[dataclasses.replace(tiny_plugin.pipelines[0], smoke=None)])
    out = io.StringIO()
    assert selftest(manager=PluginManager.from_plugins(no_smoke), gui=False, out=out) == 1
    assert "ready pipelines without a smoke config: fit" in out.getvalue()


def test_cli_flag_is_listed_and_help_stays_light():
    code = ("import sys; from workbench.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'PySide6', 'workbench.selftest') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--selftest" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_workbench_selftest_command_runs_the_bundled_plugins(tmp_path):
    """The whole command from source: both bundled plugins' smoke pipelines (about a minute)."""
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "untouched"), "OMP_NUM_THREADS": "1"}
    env.pop("QT_QPA_PLATFORM", None)
    exe = Path(sys.executable).with_name("workbench")
    result = subprocess.run([str(exe), "--selftest"], capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "QT_QPA_PLATFORM=offscreen" in result.stdout
    for check in ("ok    sea.embed", "ok    vmat.cohort", "self-test passed"):
        assert check in result.stdout, result.stdout
    assert not (tmp_path / "untouched").exists()
