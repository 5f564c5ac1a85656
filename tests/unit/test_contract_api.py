import pytest

from workbench.api import ComponentSpec, DuplicateComponentError, PipelineConfig, PipelineSpec, Plugin, PluginError, Registry, UnknownComponentError


def test_registry_rejects_duplicates_and_unknown():
    reg = Registry([ComponentSpec("students", "a", "m:a")])
    with pytest.raises(DuplicateComponentError):
        reg.add(ComponentSpec("students", "a", "m:b"))
    with pytest.raises(PluginError, match="unknown component kind"):
        reg.add(ComponentSpec("gizmos", "a", "m:a"))
    with pytest.raises(UnknownComponentError, match="unknown students 'b'"):
        reg.spec("students", "b")


def test_plugin_validation_catches_contract_errors():
    ok = PipelineSpec("fit", "Fit", PipelineConfig, "m:run")
    Plugin("good", "Good", "1", pipelines=[ok]).validate()
    with pytest.raises(PluginError, match="duplicate pipeline"):
        Plugin("p", "P", "1", pipelines=[ok, ok]).validate()
    with pytest.raises(PluginError, match="API version"):
        Plugin("p", "P", "1", api_version=99).validate()
    with pytest.raises(PluginError, match="not 'module:attr'"):
        Plugin("p", "P", "1", pipelines=[PipelineSpec("x", "X", PipelineConfig, "no-colon")]).validate()
    with pytest.raises(PluginError, match="pydantic model"):
        Plugin("p", "P", "1", pipelines=[PipelineSpec("x", "X", dict, "m:r")]).validate()  # type: ignore[arg-type]
