"""sea.distill end to end on a tiny generated dataset with a cheap TorchScript teacher."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sea_distill_fixtures import shared_dir, tiny_config
from workbench.api import InputError
from workbench.testing.memory_context import MemoryContext, drive
from workbench_sea.pipelines.distill import build_model, run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One distillation with ONNX + TorchScript export and profiling on."""
    run_dir = tmp_path_factory.mktemp("distill-run")
    ctx = MemoryContext(run_dir, home=shared_dir(tmp_path_factory, "sea-home"))
    config = tiny_config(tmp_path_factory, export_onnx=True, export_torchscript=True, profile=True,
                         scratch_baseline=True, scratch_epochs=1)
    summary = drive(run(config, ctx))
    return ctx, config, summary


def test_distill_reports_every_subject_per_fold(finished):
    ctx, config, summary = finished
    evals = {(e.subject, e.metric, e.case): e.value for e in ctx.evaluations}
    for subject in ("teacher", "reduced_teacher", "student", "scratch"):
        mean = evals[(subject, "accuracy", "")]
        folds = [evals[(subject, "accuracy", f"fold{f}")] for f in (1, 2)]
        assert mean == pytest.approx(np.mean(folds))
        assert evals[(subject, "accuracy_sd", "")] == pytest.approx(np.std(folds, ddof=1))
        assert 0.0 <= mean <= 1.0
    # 10 classes: the teacher's embeddings carry class information
    assert evals[("teacher", "accuracy", "")] > 0.3
    for subject in ("teacher", "student"):
        for metric in ("storage_bytes", "activation_peak_bytes", "macs", "latency_median_ms", "parameters"):
            assert evals[(subject, metric, "")] > 0
    assert "student" in summary["table"] and "teacher/student" in summary["table"]


def test_training_logs_curves_and_checkpoints_each_epoch(finished):
    ctx, config, _ = finished
    assert sorted(ctx.values("train_loss")) == [0, 1]
    assert sorted(ctx.values("val_loss")) == [0, 1]
    assert [c.step for c in ctx.checkpoints] == [0, 1]
    # the baseline's per-fold training stays out of the student's curves
    assert not any(k.startswith("scratch") for k in ctx.metric_table())


def test_artifacts_reload_and_reproduce_the_student(finished):
    ctx, config, _ = finished
    kinds = {a.kind for a in ctx.artifacts}
    assert {"sea-student", "sea-reduction", "sea-projection", "sea-sampling", "sea-sampling-projection",
            "sea-training", "sea-results", "export-onnx", "export-torchscript"} <= kinds
    results = json.loads((ctx.run_dir / "results.json").read_text())
    assert results["config"]["reduced_dim"] == 64
    evals = {(e.subject, e.metric): e.value for e in ctx.evaluations if not e.case}
    assert results["ratios"]["storage_bytes"] == pytest.approx(
        evals[("teacher", "storage_bytes")] / evals[("student", "storage_bytes")])
    for name in ("student", "student-int8"):
        if name in results["exports"]:
            assert results["exports"][name]["max_abs_diff"] < 1e-4
    model, example = build_model(ctx.run_dir, config.model_dump(), "student")
    assert example.shape == (1, 8000)
    meta = json.loads((ctx.run_dir / "student.json").read_text())
    assert meta["reduction"]["kind"] == "pca" and meta["reduction"]["dim"] == 64
    proj = np.load(ctx.run_dir / "projection.npz")
    assert proj["teacher_xy"].shape == proj["student_xy"].shape == (200, 2)
    with torch.no_grad():
        assert model(torch.randn(3, 8000)).shape == (3, 64)


def test_sampling_artifact_matches_the_sample(finished):
    ctx, config, _ = finished
    info = json.loads((ctx.run_dir / "sampling.json").read_text())
    assert info["sampler"] == "random" and info["sample_size"] == 150
    assert info["coverage"]["n_sampled"] == 150
    assert sum(info["coverage"]["label_counts"].values()) == 150


def test_resume_after_an_interrupted_epoch_finishes_the_run(tmp_path, tmp_path_factory):
    home = shared_dir(tmp_path_factory, "sea-home")
    config = tiny_config(tmp_path_factory, epochs=3, eval_folds=2)
    first = MemoryContext(tmp_path, home=home, cancel_after_checkpoints=1)
    summary = drive(run(config, first), raise_on_stop=False)
    assert summary is None and [c.step for c in first.checkpoints] == [0]
    second = MemoryContext(tmp_path, home=home)
    summary = drive(run(config, second))
    assert sorted(second.values("train_loss")) == [1, 2]  # epoch 0 was not trained again
    assert any("resumed" in m for m in second.messages())
    assert "student" in summary["table"]


def test_missing_dataset_is_an_input_error(tmp_path, tmp_path_factory):
    config = tiny_config(tmp_path_factory, dataset_dir=str(tmp_path / "nowhere"))
    with pytest.raises(InputError) as err:
        drive(run(config, MemoryContext(tmp_path / "run", home=tmp_path / "home")))
    assert "nowhere" in str(err.value)


def test_profile_target_rejects_a_run_without_a_student(tmp_path, tmp_path_factory):
    with pytest.raises(InputError) as err:
        build_model(tmp_path, tiny_config(tmp_path_factory).model_dump(), "student")
    assert "student.json" in str(err.value)
