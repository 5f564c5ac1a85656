"""SEA plugin manifest: imported at discovery, so it imports nothing heavy."""
from __future__ import annotations

from workbench.api import ComponentSpec, DemoSpec, PipelineSpec, Plugin, ProfileTargetSpec

from .configs import DistillConfig, EmbedConfig

_P = "workbench_sea.pipelines"

plugin = Plugin(
    name="sea",
    title="SEA: urban sound embeddings",
    version="0.1.0",
    description="Specialized Embedding Approximation (Srivastava et al., ICASSP 2021): approximate a large "
    "audio embedding teacher with a tiny edge student on a target domain.",
    pipelines=[
        PipelineSpec("embed", "Embed a dataset with a teacher", EmbedConfig, f"{_P}.embed:run",
                     description="Teacher embeddings of every clip into the shared, content-addressed cache.",
                     smoke={"teacher": "aisfx", "demo_clips_per_class_per_fold": 1, "max_clips": 4, "hop_s": 1.0}),
        PipelineSpec("distill", "Distill a SEA student", DistillConfig, f"{_P}.distill:run", status="planned",
                     description="Sample, reduce, train the student, evaluate downstream (issue: SEA part 2)."),
        PipelineSpec("sweep", "Sweep strategies x reductions x sizes", DistillConfig, f"{_P}.sweep:run",
                     status="planned"),
    ],
    components=[
        ComponentSpec("teachers", "aisfx", "workbench_sea.compute.teachers:load_teacher", "aiSFX (pretrained CNN, 512-d)"),
        ComponentSpec("teachers", "openl3", "workbench_sea.compute.teachers:load_teacher", "OpenL3 (Keras weights)"),
        ComponentSpec("teachers", "keras-h5", "workbench_sea.compute.teachers:load_teacher", "Any L3-family Keras .h5"),
        ComponentSpec("teachers", "torchscript", "workbench_sea.compute.teachers:load_teacher", "TorchScript model"),
        ComponentSpec("datasets", "urbansound8k", "workbench_sea.compute.dataset_readers:read_urbansound8k", "UrbanSound8K"),
        ComponentSpec("datasets", "esc50", "workbench_sea.compute.dataset_readers:read_esc50", "ESC-50"),
        ComponentSpec("datasets", "sonyc-ust", "workbench_sea.compute.dataset_readers:read_sonyc_ust", "SONYC-UST"),
        ComponentSpec("datasets", "folders", "workbench_sea.compute.dataset_readers:read_folders", "One folder per class"),
    ],
    profile_targets=[ProfileTargetSpec("embed", f"{_P}.embed:build_model", models=("teacher",), exportable=("teacher",))],
    cli="workbench_sea.cli:main",
    demo=DemoSpec("embed", {"hop_s": 1.0}, "Generates the synthetic urban-sound demo dataset and caches aiSFX teacher embeddings."),
)
