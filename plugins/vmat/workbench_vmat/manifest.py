"""VMAT plugin manifest: imported at discovery, so it imports nothing heavy."""
from __future__ import annotations

from workbench.api import DemoSpec, PipelineSpec, Plugin, ProfileTargetSpec, ViewSpec

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
        PipelineSpec("teacher", "Train a teacher", TeacherConfig, f"{_P}.teacher:run",
                     description="A residual 3D U-Net (CT + dose in water -> patient dose) trained on the cohort's "
                     "train split, early-stopped on val gamma 2%/2mm; saved as safetensors + JSON for vmat.distill.",
                     resumable=True,
                     smoke={"preset": "tiny", "epochs": 1, "patches_per_epoch": 4, "cohort_dir": "builtin:tiny"}),
        PipelineSpec("distill", "Distill a student", DistillConfig, f"{_P}.distill:run",
                     description="A compact student from the teacher (ground truth + alpha * teacher output + beta * "
                     "features), a student-only baseline, and the test-split evaluation: gamma, DVH, RTDOSE, report.",
                     resumable=True,
                     smoke={"preset": "tiny", "epochs": 1, "student_epochs": 1, "patches_per_epoch": 4,
                            "cohort_dir": "builtin:tiny"}),
    ],
    cli="workbench_vmat.cli:main",
    views=[
        ViewSpec("vmat.doses", "Dose viewer", ("vmat-case-doses",), "workbench_vmat.views:dose_viewer"),
        ViewSpec("vmat.evaluation", "Evaluation", ("vmat-evaluation",), "workbench_vmat.views:evaluation_view"),
    ],
    profile_targets=[
        ProfileTargetSpec("distill", "workbench_vmat.pipelines.distill:build_model_for_profile",
                          models=("student", "teacher"), exportable=("student",)),
        ProfileTargetSpec("teacher", "workbench_vmat.pipelines.distill:build_model_for_profile",
                          models=("teacher",), exportable=()),
    ],
    demo=DemoSpec("distill", {"preset": "demo"},
                  "Prostate VMAT demo: the cached demo cohort (generated first if missing, ~10 min), then a small "
                  "teacher, the distilled student and a student-only baseline, evaluated on the test cases "
                  "(gamma 2%/2mm of input, teacher, student, student-only)."),
)

# the guided flow (teacher → data → sampling → student → distill → inspect); declarations only
from .flow import DISTILL_FLOW  # noqa: E402

plugin.flows.append(DISTILL_FLOW)
