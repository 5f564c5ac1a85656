"""The flow declaration in the plugin contract: checks at discovery, backward compatibility."""
import pytest

from workbench.api import FLOW_VERSION, FlowSpec, Plugin, PluginError, StepSpec
from workbench.testing.tiny import TinyFitConfig, plugin as tiny

from workbench.api import PipelineSpec


def make(flow: FlowSpec) -> Plugin:
    return Plugin("demo", "Demo", "1", pipelines=[PipelineSpec("fit", "Fit", TinyFitConfig, "m:run")], flows=[flow])


def test_tiny_flow_is_valid_and_every_field_is_reachable():
    tiny.validate()
    flow = tiny.flow("fit")
    assert [s.kind for s in flow.steps] == ["teacher", "data", "sampling", "student", "distill", "inspect"]
    fields = list(TinyFitConfig.model_fields)
    claimed = [f for s in flow.steps for f in s.fields]
    assert sorted(claimed + flow.unclaimed(fields)) == sorted(fields)
    assert flow.owner_of("hidden") == "student" and flow.owner_of("seed") is None


def test_a_plugin_without_flows_still_validates():
    Plugin("old", "Old", "1", pipelines=[PipelineSpec("fit", "Fit", TinyFitConfig, "m:run")]).validate()


@pytest.mark.parametrize("flow, message", [
    (FlowSpec("fit", (StepSpec("student", ("no_such_field",)), StepSpec("distill"))), "no config field 'no_such_field'"),
    (FlowSpec("fit", (StepSpec("data", ("hidden",)), StepSpec("student", ("hidden",)), StepSpec("distill"))),
     "claimed by steps 'data' and 'student'"),
    (FlowSpec("fit", (StepSpec("student"), StepSpec("teacher"), StepSpec("distill"))), "must be in the order"),
    (FlowSpec("fit", (StepSpec("teacher"),)), "a 'distill' step is required"),
    (FlowSpec("fit", (StepSpec("evaluate"), StepSpec("distill"))), "unknown step kind 'evaluate'"),
    (FlowSpec("fit", (StepSpec("teacher", preview="not a target"), StepSpec("distill"))), "is not 'module:attr'"),
    (FlowSpec("nope", (StepSpec("distill"),)), "unknown pipeline 'nope'"),
    (FlowSpec("fit", (StepSpec("distill"),), version=FLOW_VERSION + 1), f"targets flow version {FLOW_VERSION + 1}"),
])
def test_bad_flows_are_contract_errors_that_say_what_is_wrong(flow, message):
    with pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(flow).validate()
