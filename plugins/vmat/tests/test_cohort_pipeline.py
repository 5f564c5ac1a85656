"""The ``cohort`` pipeline end to end on a tiny cohort (slow: imports pydosert, writes DICOM)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.api import Progress, RunContext
from workbench_vmat.configs import CohortConfig

pytestmark = pytest.mark.slow


class Ctx(RunContext):
    def __init__(self, home: Path, seed: int = 0):
        self.run_id = "test"
        self.seed = seed
        self.home = home
        self.run_dir = home / "runs" / "test"
        self.device = "cpu"
        self.logs: list[str] = []
        self.artifacts: list[tuple[str, Path, dict]] = []
        self.evaluations: list[tuple] = []

    def metric(self, key, value, step):
        pass

    def log(self, message, level="info"):
        self.logs.append(message)

    def artifact(self, kind, path, **meta):
        self.artifacts.append((kind, Path(path), meta))
        return Path(path)

    def evaluation(self, subject, metric, value, criteria="", case=""):
        self.evaluations.append((subject, metric, value, criteria, case))

    def save_checkpoint(self, tensors, state, step):
        raise NotImplementedError

    def load_checkpoint(self):
        return None

    @property
    def cancelled(self):
        return False

    def component(self, kind, key):
        raise NotImplementedError


def _run(config: CohortConfig, ctx: Ctx) -> list[Progress]:
    from workbench_vmat.pipelines.cohort import run

    return list(run(config, ctx))


def test_tiny_cohort_generates_evaluates_and_caches(tmp_path):
    from workbench_vmat.compute.cohort import read_cohort
    from workbench_vmat.pipelines.cohort import SMOKE, cohort_root

    config = CohortConfig(**{**SMOKE, "cases": 2, "cp_spacing_deg": 20.0})
    ctx = Ctx(tmp_path / "home")
    events = _run(config, ctx)
    assert events and all(isinstance(e, Progress) for e in events)
    assert events[-1].done == events[-1].total
    root = cohort_root(config, ctx.cache_dir("vmat-cohorts"), ctx.seed)
    cohort = read_cohort(root)
    assert [c.id for c in cohort.cases] == ["case_000", "case_001"]
    assert {c.split for c in cohort.cases} <= {"train", "val", "test"}
    kinds = {k for k, _, _ in ctx.artifacts}
    assert {"vmat-cohort", "image", "report"} <= kinds
    png = next(p for k, p, _ in ctx.artifacts if k == "image")
    assert png.read_bytes()[:4] == b"\x89PNG"
    per_case = [e for e in ctx.evaluations if e[4]]
    overall = [e for e in ctx.evaluations if not e[4]]
    assert {e[4] for e in per_case} == {"case_000", "case_001"}
    assert {(e[1], e[3][:6]) for e in overall} >= {("gamma_pass_rate", "2%/2mm"), ("gamma_pass_rate", "1%/1mm")}
    assert all(0 <= e[2] <= 100 for e in ctx.evaluations if e[1] == "gamma_pass_rate")
    summary = json.loads((root / "summary.json").read_text())
    assert summary["cases"][0]["anatomy"]["prosthesis"] in ("none", "left", "right", "both")
    # a second run reuses the cache
    ctx2 = Ctx(tmp_path / "home")
    events2 = _run(config, ctx2)
    assert len(events2) == 1 and any("reusing" in m for m in ctx2.logs)
    assert len(ctx2.evaluations) == len(ctx.evaluations)


def test_cases_read_back_through_the_dicom_reader(tmp_path):
    """The generated DICOM goes through the same reader as clinical data."""
    from workbench_vmat.compute.cohort import load_case, read_cohort
    from workbench_vmat.pipelines.cohort import SMOKE, cohort_root

    config = CohortConfig(**{**SMOKE, "cases": 1, "cp_spacing_deg": 20.0})
    ctx = Ctx(tmp_path / "home")
    _run(config, ctx)
    cohort = read_cohort(cohort_root(config, ctx.cache_dir("vmat-cohorts"), ctx.seed))
    case = load_case(cohort.cases[0])
    assert case.input_dose.shape == case.reference_dose.shape
    assert np.isfinite(case.reference_dose).all() and case.reference_dose.max() > 1.5
    assert case.structures is not None and "PTV" in case.structures
