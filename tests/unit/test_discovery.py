"""Discovery through real entry points: plugins 'installed' into a temporary directory."""
import json
import subprocess
import textwrap

import pytest


def _install_fake_plugin(root, dist, module, body):
    """Write a package plus a .dist-info with an entry point, as pip would install it."""
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"  # as pip names it
    info.mkdir()
    info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    info.joinpath("entry_points.txt").write_text(f"[workbench.plugins]\n{module} = {module}:plugin\n")


GOOD = """
from workbench.api import Plugin, PipelineSpec, PipelineConfig
plugin = Plugin("thirdparty", "Third party", "1.0",
                pipelines=[PipelineSpec("go", "Go", PipelineConfig, "thirdparty.run:run"),
                           PipelineSpec("later", "Later", PipelineConfig, "thirdparty.later:run", status="planned")])
"""
BROKEN = """
raise ImportError("this plugin needs libfoo 9 which is not installed")
"""


@pytest.fixture
def plugin_dir(tmp_path):
    root = tmp_path / "site"
    _install_fake_plugin(root, "wb-thirdparty", "thirdparty", GOOD)
    _install_fake_plugin(root, "wb-broken", "brokenplugin", BROKEN)
    return root


def test_cli_lists_installed_and_broken_plugins(plugin_dir, cli_env, workbench_cmd):
    cli_env["PYTHONPATH"] = str(plugin_dir)
    out = subprocess.run([*workbench_cmd, "plugins", "--json"], env=cli_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["thirdparty"]["ok"] and rows["thirdparty"]["pipelines"][0]["id"] == "go"
    assert not rows["brokenplugin"]["ok"]
    assert "libfoo 9" in rows["brokenplugin"]["error"]
    # the bundled plugins and the tiny one still work beside the broken one
    assert rows["tiny"]["ok"] and rows["sea"]["ok"] and rows["vmat"]["ok"]
    text = subprocess.run([*workbench_cmd, "plugins"], env=cli_env, capture_output=True, text=True, timeout=60).stdout
    assert "brokenplugin  BROKEN" in text and "planned: not built yet" in text


def test_manager_reports_validation_failure(monkeypatch):
    from workbench.api import PipelineConfig, PipelineSpec, Plugin
    from workbench.core.plugins import PluginManager

    bad = Plugin("bad", "Bad", "1", pipelines=[PipelineSpec("x", "X", PipelineConfig, "m:r")] * 2)
    good = Plugin("good", "Good", "1")
    manager = PluginManager.from_plugins(bad, good)
    assert list(manager.plugins) == ["good"]
    assert "duplicate pipeline" in manager.broken[0].error
