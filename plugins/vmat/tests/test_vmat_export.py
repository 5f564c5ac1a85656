"""The student exports to ONNX and TorchScript through the host exporter and reproduces PyTorch
within 1e-4; the profile target rebuilds a run's models from their safetensors + JSON."""
from __future__ import annotations

import pytest
import torch

from workbench.core.export import export_model
from workbench.core.profiling import profile_model
from workbench_vmat.compute.models import build_model, student_spec, teacher_spec
from workbench_vmat.compute.normalise import Normalisation
from workbench_vmat.compute.teacher_io import save_model
from workbench_vmat.pipelines.distill import build_model_for_profile


def _run_dir(tmp_path):
    torch.manual_seed(0)
    grid = {"example_shape": [8, 12, 12], "multiple": 4}
    for name, spec in (("teacher", teacher_spec("tiny")), ("student", student_spec("tiny", "unet-s"))):
        model = build_model(spec)
        with torch.no_grad():  # trained-looking weights: a zero head would make the check trivial
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        save_model(tmp_path / f"{name}.safetensors", model, spec, Normalisation(), role=name, grid=grid)
    return tmp_path


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_student_export_matches_pytorch(tmp_path, fmt, suffix):
    model, example = build_model_for_profile(_run_dir(tmp_path), {}, "student")
    assert example.shape == (1, 2, 8, 12, 12)
    example = torch.rand_like(example)  # a dose in water to correct (zeros stay zeros)
    out = model(example)
    assert not torch.allclose(out, example[:, 1:2])  # the network contributes something
    result = export_model(model, example, tmp_path / f"student{suffix}", format=fmt, atol=1e-4)
    assert result["checked"] and result["max_abs_diff"] <= 1e-4
    assert (tmp_path / f"student{suffix}").stat().st_size > 1000


def test_profile_target_gives_teacher_and_student_for_the_host_profiler(tmp_path):
    run_dir = _run_dir(tmp_path)
    teacher, x = build_model_for_profile(run_dir, {}, "teacher")
    student, _ = build_model_for_profile(run_dir, {}, "student")
    pt = profile_model(teacher, x, repeats=20, warmup=1)
    ps = profile_model(student, x, repeats=20, warmup=1)
    assert pt["parameters"] > 10 * ps["parameters"] and pt["macs"] > ps["macs"] > 0
    with pytest.raises(Exception, match="no model"):
        build_model_for_profile(run_dir, {}, "critic")
