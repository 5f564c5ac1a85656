"""Runs over every discovered plugin (bundled or third party) and every ready pipeline."""
import pytest

from workbench.core.config_io import validate_config
from workbench.core.plugins import PluginManager

MANAGER = PluginManager.discover()
PIPELINES = [(p, s) for p in MANAGER.plugins.values() for s in p.pipelines]


def test_bundled_plugins_are_discovered_and_healthy():
    assert {"sea", "vmat"} <= set(MANAGER.plugins), [r.error for r in MANAGER.broken]


@pytest.mark.parametrize("plugin,spec", PIPELINES, ids=[f"{p.name}.{s.id}" for p, s in PIPELINES])
def test_config_defaults_validate_and_describe_themselves(plugin, spec):
    config = validate_config(plugin, spec, {})
    schema = spec.config.model_json_schema()
    assert schema["properties"], "a config model with no settings gives the GUI nothing to show"
    missing_help = [k for k, v in schema["properties"].items() if not v.get("description")]
    assert not missing_help, f"fields without help text: {missing_help}"
    assert config.model_dump(mode="json")


READY = [(p, s) for p, s in PIPELINES if s.status == "ready"]


@pytest.mark.parametrize("plugin,spec", READY, ids=[f"{p.name}.{s.id}" for p, s in READY])
def test_ready_pipeline_has_a_smoke_config_that_completes(plugin, spec, wb_home):
    from workbench.core.session import Session

    assert spec.smoke is not None, "ready pipelines declare a tiny smoke config for these tests"
    session = Session.open(wb_home, PluginManager.from_plugins(plugin))
    job = session.engine.submit(plugin, spec, validate_config(plugin, spec, spec.smoke))
    assert job.wait(600) == "completed", job.error
