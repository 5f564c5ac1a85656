"""The teacher and distill pipelines end to end on the tiny analytic DICOM cohort.

One module-scoped teacher run and one distill run (loading that teacher) feed most checks,
so the whole file stays within seconds on 2 cores.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.testing.memory_context import MemoryContext
from workbench_vmat.compute.models import build_model, student_spec, teacher_spec
from workbench_vmat.compute.teacher_io import load_model
from workbench_vmat.compute.tiny_cohort import BUILTIN
from workbench_vmat.compute.training import (
    PhaseContext,
    StudentWithAdapters,
    TeacherCache,
    parse_layer_pairs,
    teacher_targets,
)
from workbench_vmat.configs import DistillConfig, TeacherConfig


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("vmat-home")


@pytest.fixture(scope="module")
def teacher_run(home):
    from workbench_vmat.pipelines.teacher import run

    torch.set_num_threads(1)
    ctx = MemoryContext(home / "runs" / "teacher", home=home, resume=False)
    summary = ctx.drive(run(TeacherConfig(cohort_dir=BUILTIN, preset="tiny", epochs=2, patches_per_epoch=8), ctx))
    return ctx, summary


@pytest.fixture(scope="module")
def distill_run(home, teacher_run):
    from workbench_vmat.pipelines.distill import run

    torch.set_num_threads(1)
    teacher_file = teacher_run[0].run_dir / "teacher.safetensors"
    ctx = MemoryContext(home / "runs" / "distill", home=home, resume=False)
    config = DistillConfig(cohort_dir=BUILTIN, preset="tiny", teacher_path=str(teacher_file), student_epochs=2,
                           patches_per_epoch=8, alpha=1.0, beta=0.5, feature_layers="bottleneck,dec0")
    summary = ctx.drive(run(config, ctx))
    return ctx, summary


def test_teacher_run_trains_validates_on_gamma_and_saves_a_loadable_teacher(teacher_run):
    ctx, summary = teacher_run
    table = ctx.metric_table()
    assert set(table["teacher/val_gamma_2_2"]) == {0, 1}
    assert all(0 <= v <= 100 for v in table["teacher/val_gamma_2_2"].values())
    assert "teacher/train_loss" in table and "teacher/val_loss" in table
    loaded = load_model(ctx.run_dir / "teacher.safetensors", role="teacher")
    assert loaded.spec == teacher_spec("tiny") and loaded.normalisation.dose_scale_gy == 2.0
    assert [a.kind for a in ctx.artifacts] == ["model"]
    subjects = {(e.subject, e.case) for e in ctx.evaluations}
    assert ("teacher", "") in subjects and ("input", "case_004") in subjects
    assert summary["epochs_run"] == 2
    assert any("restored the best weights" in m for m in ctx.messages())


def test_distill_writes_predictions_rtdose_evaluations_and_evaluation_json(distill_run):
    ctx, summary = distill_run
    kinds = [a.kind for a in ctx.artifacts]
    for kind in ("model", "vmat-case-doses", "rtdose", "vmat-evaluation"):
        assert kind in kinds, kind
    npz = next(Path(a.path) for a in ctx.artifacts if a.kind == "vmat-case-doses")
    assert npz.name == "case_004.npz" and npz.parent.name == "predictions"
    with np.load(npz) as z:
        for key in ("ct", "dose_water", "reference", "student", "teacher", "student_only", "spacing_mm",
                    "origin_mm", "prescription_gy", "mask_PTV"):
            assert key in z.files, key
        shape = z["reference"].shape
        assert z["student"].shape == shape and z["ct"].dtype == np.float32 and z["mask_PTV"].dtype == bool
        assert float(z["prescription_gy"]) == 2.0
        student = z["student"]
    evaluation = json.loads(Path(next(a.path for a in ctx.artifacts if a.kind == "vmat-evaluation")).read_text())
    assert set(evaluation["subjects"]) == {"input", "teacher", "student", "student_only"}
    per_case = evaluation["subjects"]["student"]["per_case"]["case_004"]
    assert 0 <= per_case["gamma_2_2"] <= 100 and "gamma_1_1" in per_case and "gamma_3_3" in per_case
    assert "mean" in evaluation["subjects"]["student"]["summary"]["gamma_2_2"]
    assert evaluation["footprint"]["teacher"]["parameters"] > 10 * evaluation["footprint"]["student"]["parameters"]
    stored = {(e.subject, e.metric, e.case): e for e in ctx.evaluations}
    assert stored[("student", "gamma_2_2", "case_004")].criteria == "2%/2mm 10%"
    assert ("student_only", "gamma_2_2", "") in stored and ("input", "gamma_2_2_sd", "") in stored
    assert summary["student_gamma_2_2"] == pytest.approx(per_case["gamma_2_2"])

    # the RTDOSE re-imports with the CT's grid and frame of reference and the student's values
    from workbench_vmat.compute.cohort import load_case, read_cohort
    from workbench_vmat.compute.dicom_io import read_rtdose, resample

    rt = read_rtdose(next(a.path for a in ctx.artifacts if a.kind == "rtdose"))
    cohort = read_cohort(ctx.home / "cache" / "vmat-cohorts" / "tiny-v1")
    case = load_case(cohort.case("case_004"))
    assert rt.frame_of_reference_uid == case.ct.frame_of_reference_uid
    assert rt.array.shape == shape and np.allclose(rt.origin, case.ct.origin) and np.allclose(rt.spacing, case.ct.spacing)
    np.testing.assert_allclose(resample(rt, case.ct).array, student, atol=1e-4 * max(1.0, float(student.max())))


def test_distill_logs_every_loss_term_per_phase_and_checkpoints_by_phase(distill_run):
    ctx, _ = distill_run
    table = ctx.metric_table()
    for key in ("student/train_ground_truth", "student/train_teacher", "student/train_features",
                "student/val_gamma_2_2", "student_only/train_ground_truth", "student_only/val_gamma_2_2"):
        assert key in table, key
    assert "student_only/train_teacher" not in table and "student_only/train_features" not in table
    # phases get consecutive step ranges (no teacher trained here: the student starts at 0)
    assert sorted(table["student/train_loss"]) == [0, 1] and sorted(table["student_only/train_loss"]) == [2, 3]
    # teacher outputs were cached per train case under the home
    cached = sorted(p.name for p in (ctx.home / "cache" / "vmat-teacher-outputs").rglob("*.npz"))
    assert cached == ["case_000.npz", "case_001.npz", "case_002.npz"]
    student = load_model(ctx.run_dir / "student.safetensors", role="student")
    assert student.spec == student_spec("tiny", "unet-s")


def test_phase_context_hands_a_checkpoint_back_only_to_its_phase(tmp_path):
    ctx = MemoryContext(tmp_path)
    PhaseContext(ctx, "teacher", 0).save_checkpoint({"w": torch.zeros(1)}, {"epoch": 3}, 3)
    assert PhaseContext(ctx, "student", 10).load_checkpoint() is None
    tensors, state = PhaseContext(ctx, "teacher", 0).load_checkpoint()
    assert state == {"epoch": 3} and "w" in tensors
    PhaseContext(ctx, "student", 10).metric("train_loss", 1.0, 2)
    assert ctx.values("student/train_loss") == {12: 1.0}


def test_feature_term_uses_adapters_and_teacher_cache_round_trips(tmp_path):
    teacher = build_model(teacher_spec("tiny")).eval()
    student = build_model(student_spec("tiny", "unet-s"))
    pairs = parse_layer_pairs("bottleneck, dec0=dec0")
    assert pairs == [("bottleneck", "bottleneck"), ("dec0", "dec0")]
    wrapped = StudentWithAdapters(student, pairs, teacher)
    assert wrapped.losses["bottleneck"].adapter.kernel_size == (1, 1, 1)  # widths differ: 1x1x1 adapter
    x = np.random.default_rng(0).random((2, 16, 16, 16)).astype(np.float32)
    targets = teacher_targets(teacher, x, ["bottleneck", "dec0"], multiple=4)
    assert targets.features["bottleneck"].shape[1:] == (8, 8, 8) and targets.output.shape == (16, 16, 16)
    feats = {k: torch.from_numpy(v.astype(np.float32))[None] for k, v in targets.features.items()}
    out, parts = wrapped(torch.from_numpy(x)[None], feats)
    assert out.shape == (1, 1, 16, 16, 16) and set(parts) == {"bottleneck", "dec0"}
    sum(parts.values()).backward()
    assert wrapped.losses["bottleneck"].adapter.weight.grad is not None

    from workbench_vmat.compute.training import CaseArrays

    case = CaseArrays("c1", "train", x, x[1], (4.0, 4.0, 4.0))
    cache = TeacherCache(tmp_path)
    calls = []
    first = cache.get(case, lambda: calls.append(1) or targets)
    again = TeacherCache(tmp_path).get(case, lambda: calls.append(1) or targets)  # from disk this time
    assert calls == [1] and np.array_equal(again.output, first.output)
    assert np.array_equal(again.features["dec0"], first.features["dec0"])


def test_unknown_feature_layer_is_a_config_error(home, teacher_run):
    from workbench.api import ConfigError
    from workbench_vmat.pipelines.distill import run

    ctx = MemoryContext(home / "runs" / "bad", home=home, resume=False)
    config = DistillConfig(cohort_dir=BUILTIN, preset="tiny", student_epochs=1, patches_per_epoch=4, beta=1.0,
                           teacher_path=str(teacher_run[0].run_dir / "teacher.safetensors"), feature_layers="layer9")
    with pytest.raises(ConfigError, match="layer9"):
        ctx.drive(run(config, ctx))


def test_distill_resumes_after_a_cancel_in_the_student_phase(home):
    """Cancelled after the teacher (trained inside the run) and one student epoch; the resumed
    run reuses the saved teacher, continues the student and completes."""
    from workbench.api import Cancelled
    from workbench_vmat.pipelines.distill import run

    config = DistillConfig(cohort_dir=BUILTIN, preset="tiny", epochs=1, student_epochs=2, patches_per_epoch=4,
                           student_only_baseline=False, beta=0.0)
    run_dir = home / "runs" / "resume"
    ctx = MemoryContext(run_dir, home=home, cancel_after_checkpoints=2)
    with pytest.raises(Cancelled):
        ctx.drive(run(config, ctx))
    assert (run_dir / "teacher.safetensors").is_file()
    ctx2 = MemoryContext(run_dir, home=home)
    summary = ctx2.drive(run(config, ctx2))
    assert any("reusing it" in m for m in ctx2.messages())
    assert any("resumed after epoch 1/2" in m for m in ctx2.messages())
    assert sorted(ctx2.values("student/train_loss")) == [2]  # only the remaining epoch ran (offset by the teacher's 1)
    assert "student_gamma_2_2" in summary
