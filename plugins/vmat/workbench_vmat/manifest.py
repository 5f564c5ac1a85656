"""VMAT plugin manifest: imported at discovery, so it imports nothing heavy."""
from __future__ import annotations

from workbench.api import DemoSpec, PipelineSpec, Plugin

from .configs import CohortConfig, DistillConfig, TeacherConfig

_P = "workbench_vmat.pipelines"

plugin = Plugin(
    name="vmat",
    title="VMAT dose engine",
    version="0.1.0",
    description="A compact dose engine for prostate VMAT distilled from a large 3D network "
    "(Tseng et al., PMB 2023): CT + dose in water -> patient dose, judged by 3D gamma.",
    pipelines=[
        PipelineSpec("cohort", "Generate the demo cohort", CohortConfig, f"{_P}.cohort:run",
                     description="Synthetic prostate VMAT cases as DICOM: CT, dose in water (pencil beam), "
                     "reference dose to medium (Monte Carlo), RTSTRUCT.",
                     smoke={"cases": 3, "spacing_mm": 8.0, "reference": "pencil-beam", "cp_spacing_deg": 12.0}),
        PipelineSpec("teacher", "Train a teacher", TeacherConfig, f"{_P}.teacher:run", status="planned"),
        PipelineSpec("distill", "Distill a student", DistillConfig, f"{_P}.distill:run", status="planned"),
    ],
    cli="workbench_vmat.cli:main",
    demo=DemoSpec("cohort", {}, "Generates the synthetic prostate VMAT demo cohort (DICOM); training and distillation are not built yet."),
)

# the guided flow (teacher → data → sampling → student → distill → inspect); declarations only
from .flow import DISTILL_FLOW  # noqa: E402

plugin.flows.append(DISTILL_FLOW)
