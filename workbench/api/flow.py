"""The guided flow a plugin declares for a pipeline: teacher → data → sampling → student →
distill → inspect.

A `FlowSpec` groups a pipeline's config fields into steps. Each step names the fields it owns
and, optionally, a preview ``"module:attr"`` the host calls off the GUI thread as
``preview(config, ctx: PreviewContext) -> Preview`` to show what the choice means before
anything is trained. Fields no step claims still reach the user (the host shows them in the
Distill step), so a flow can never hide a setting.

Versioning: `FLOW_VERSION` is the newest flow format this host reads. A flow declares the
version it targets; older ones keep working, a newer one is a contract error naming both
versions. Plugins without flows are unaffected (the field defaults to empty).
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: newest flow declaration format this host understands
FLOW_VERSION = 1

#: the steps, in the order the host shows them
STEP_KINDS = ("teacher", "data", "sampling", "student", "distill", "inspect")

STEP_TITLES = {
    "teacher": "Teacher",
    "data": "Domain data",
    "sampling": "Sampling",
    "student": "Student",
    "distill": "Distill",
    "inspect": "Inspect",
}


@dataclass(frozen=True)
class StepSpec:
    kind: str  # one of STEP_KINDS
    fields: tuple[str, ...] = ()  # config fields this step owns, in display order
    #: "module:attr": preview(config, ctx) -> Preview; imported only when the step is previewed
    preview: str | None = None
    title: str = ""  # default: STEP_TITLES[kind]
    #: what the choice in this step means, shown above its settings
    description: str = ""

    @property
    def display_title(self) -> str:
        return self.title or STEP_TITLES.get(self.kind, self.kind.capitalize())


@dataclass(frozen=True)
class FlowSpec:
    pipeline: str  # id of the pipeline the flow runs
    steps: tuple[StepSpec, ...] = field(default_factory=tuple)
    title: str = ""
    description: str = ""
    version: int = FLOW_VERSION

    def step(self, kind: str) -> StepSpec | None:
        return next((s for s in self.steps if s.kind == kind), None)

    def owner_of(self, field_name: str) -> str | None:
        """The kind of the step that owns a config field, or None."""
        return next((s.kind for s in self.steps if field_name in s.fields), None)

    def unclaimed(self, all_fields: list[str] | tuple[str, ...]) -> list[str]:
        """Config fields no step owns (the host shows them in the Distill step)."""
        claimed = {f for s in self.steps for f in s.fields}
        return [f for f in all_fields if f not in claimed]

    def problems(self, config_fields: list[str] | tuple[str, ...], pipeline_ids: set[str]) -> list[str]:
        """Contract violations; empty when the flow is usable."""
        from .plugin import _TARGET  # one definition of a target's form

        out: list[str] = []
        if self.version > FLOW_VERSION or self.version < 1:
            out.append(f"flow for {self.pipeline!r} targets flow version {self.version}; "
                       f"this host reads versions 1 to {FLOW_VERSION}")
        if self.pipeline not in pipeline_ids:
            out.append(f"flow names unknown pipeline {self.pipeline!r}")
        kinds = [s.kind for s in self.steps]
        for k in kinds:
            if k not in STEP_KINDS:
                out.append(f"flow {self.pipeline!r}: unknown step kind {k!r} (kinds: {', '.join(STEP_KINDS)})")
        if len(set(kinds)) != len(kinds):
            out.append(f"flow {self.pipeline!r}: a step kind appears twice")
        known = [k for k in kinds if k in STEP_KINDS]
        if known != sorted(known, key=STEP_KINDS.index):
            out.append(f"flow {self.pipeline!r}: steps must be in the order {' → '.join(STEP_KINDS)}")
        if "distill" not in kinds:
            out.append(f"flow {self.pipeline!r}: a 'distill' step is required (it runs the pipeline)")
        owners: dict[str, str] = {}
        for s in self.steps:
            for f in s.fields:
                if f not in config_fields:
                    out.append(f"flow {self.pipeline!r}, step {s.kind!r}: no config field {f!r}")
                elif f in owners:
                    out.append(f"flow {self.pipeline!r}: field {f!r} is claimed by steps {owners[f]!r} and {s.kind!r}")
                else:
                    owners[f] = s.kind
            if s.preview is not None and not _TARGET.match(s.preview):
                out.append(f"flow {self.pipeline!r}, step {s.kind!r}: preview {s.preview!r} is not 'module:attr'")
        return out
