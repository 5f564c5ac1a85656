"""sea.sweep: combinations, one shared teacher pass, per-combination results, resume per combination."""
from __future__ import annotations

import json

import pytest

from sea_distill_fixtures import shared_dir, tiny_config
from workbench.testing.memory_context import MemoryContext, drive
from workbench_sea.configs import SweepConfig
from workbench_sea.pipelines.sweep import combinations, combo_name, run


def _sweep_config(tmp_path_factory, **over) -> SweepConfig:
    base = tiny_config(tmp_path_factory, epochs=1).model_dump(exclude={"sampler", "reduction", "reduced_dim",
                                                                       "student_width"})
    return SweepConfig(**{**base, "samplers": ["random", "spl"], "reductions": ["pca"], "reduced_dims": [64],
                          "student_widths": [0.125], **over})


def test_combinations_are_the_distinct_product(tmp_path_factory):
    config = _sweep_config(tmp_path_factory, samplers=["random", "dpp"], reductions=["pca", "none"],
                           reduced_dims=[64, 128])
    names = [combo_name(c) for c in combinations(config)]
    # reduction none ignores the output size: 2 samplers x (2 pca sizes + 1 none)
    assert len(names) == len(set(names)) == 6
    assert "dpp-none-full-w0.125" in names and "random-pca-128-w0.125" in names


def test_sweep_runs_each_combination_and_resumes_per_combination(tmp_path, tmp_path_factory):
    home = shared_dir(tmp_path_factory, "sea-home")
    config = _sweep_config(tmp_path_factory, profile=True)
    ctx = MemoryContext(tmp_path, home=home)
    summary = drive(run(config, ctx))
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["name"] for r in sweep["rows"]] == ["random-pca-64-w0.125", "spl-pca-64-w0.125"]
    for row in sweep["rows"]:
        assert 0 <= row["accuracy"]["mean"] <= 1 and row["storage_bytes"] > 0
        assert (tmp_path / "combos" / row["name"] / "student.safetensors").is_file()
    subjects = {e.subject for e in ctx.evaluations}
    assert {"teacher", "random-pca-64-w0.125:student", "spl-pca-64-w0.125:reduced_teacher"} <= subjects
    assert "random-pca-64-w0.125/train_loss" in ctx.metric_table()
    assert summary["combinations"] == 2 and "spl-pca-64-w0.125" in summary["table"]
    # the two samplers picked different frames
    cov = [r["coverage"] for r in sweep["rows"]]
    assert cov[0] != cov[1]

    # a resumed sweep keeps finished combinations instead of training them again
    again = MemoryContext(tmp_path, home=home)
    drive(run(config, again))
    assert not any(k.endswith("train_loss") for k in again.metric_table())
    assert sum("already done" in m for m in again.messages()) == 2


def test_sweep_config_rejects_empty_lists():
    with pytest.raises(ValueError):
        SweepConfig(samplers=[])
