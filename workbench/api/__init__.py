"""The plugin contract. No Qt, no torch: a plugin manifest imports only this and pydantic."""
from .config import PipelineConfig, component_field, component_fields
from .context import RunContext
from .errors import (
    Cancelled,
    ConfigError,
    DuplicateComponentError,
    InputError,
    PluginError,
    UnknownComponentError,
    WorkbenchError,
)
from .events import (
    ArtifactEvent,
    CheckpointEvent,
    EvaluationEvent,
    LogEvent,
    MetricEvent,
    Progress,
    StatusEvent,
)
from .flow import FLOW_VERSION, STEP_KINDS, STEP_TITLES, FlowSpec, StepSpec
from .preview import Image, Preview, PreviewContext, Scatter, Table, human_bytes, human_count
from .plugin import (
    API_VERSION,
    CliHost,
    COMPONENT_KINDS,
    ComponentSpec,
    DemoSpec,
    PipelineSpec,
    Plugin,
    ProfileTargetSpec,
    Registry,
    ViewSpec,
    load_target,
)

__all__ = [name for name in dir() if not name.startswith("_")]
