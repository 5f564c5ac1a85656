"""SEA GUI views built from a real (tiny) distillation's artifacts, offscreen.

Set SEA_VIEW_SHOTS=<folder> to keep a screenshot of each view there."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from sea_distill_fixtures import shared_dir, tiny_config  # noqa: E402
from workbench.api import InputError  # noqa: E402
from workbench.testing.memory_context import MemoryContext, drive  # noqa: E402
from workbench_sea.pipelines.distill import run  # noqa: E402


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("views-run")
    ctx = MemoryContext(run_dir, home=shared_dir(tmp_path_factory, "sea-home"))
    drive(run(tiny_config(tmp_path_factory, profile=True, epochs=2), ctx))
    artifacts = [{"kind": a.kind, "path": a.path, "bytes": a.bytes, "meta": a.meta} for a in ctx.artifacts]
    return {"id": "views-run"}, artifacts


def _shot(widget, name: str, tmp_path: Path) -> Path:
    widget.resize(900, 520)
    widget.show()
    folder = Path(os.environ.get("SEA_VIEW_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sea-{name}.png"
    assert widget.grab().save(str(path))
    return path


def test_scatter_view_shows_teacher_and_student_by_class(qtbot, finished, tmp_path):
    from workbench_sea.views import scatter_view

    run, artifacts = finished
    w = scatter_view(run, artifacts)
    qtbot.addWidget(w)
    assert len(w.teacher.items) == len(w.student.items) > 1  # one legend entry per class
    assert w.teacher.points.shape == w.student.points.shape == (200, 2)
    assert _shot(w, "scatter", tmp_path).stat().st_size > 0


def test_sampling_view_marks_the_sample(qtbot, finished, tmp_path):
    from workbench_sea.views import sampling_view

    run, artifacts = finished
    w = sampling_view(run, artifacts)
    qtbot.addWidget(w)
    assert w.sampled.sum() > 0 and (~w.sampled).sum() > 0
    assert sum(w.label_counts) == 150
    _shot(w, "sampling", tmp_path)


def test_training_view_has_train_and_validation_curves(qtbot, finished, tmp_path):
    from workbench_sea.views import training_view

    run, artifacts = finished
    w = training_view(run, artifacts)
    qtbot.addWidget(w)
    assert set(w.curves.series) == {"train", "validation"}
    assert w.curves.series["train"][0] == [1, 2]
    _shot(w, "training", tmp_path)


def test_pareto_view_of_a_run_and_of_a_sweep(qtbot, finished, tmp_path):
    from workbench_sea.views import pareto_points, pareto_view

    run, artifacts = finished
    w = pareto_view(run, artifacts)
    qtbot.addWidget(w)
    assert {p["label"] for p in w.points} == {"teacher", "student"}
    assert set(w.plots) == {"storage_bytes", "activation_peak_bytes", "latency_median_ms"}
    _shot(w, "pareto", tmp_path)
    sweep = {"teacher": {"accuracy": {"mean": 0.9}, "storage_bytes": 2e7, "activation_peak_bytes": 5e6,
                         "latency_median_ms": 50.0},
             "rows": [{"name": n, "accuracy": {"mean": a}, "storage_bytes": s, "activation_peak_bytes": s,
                       "latency_median_ms": 1.0} for n, a, s in (("a", 0.8, 1e5), ("b", 0.7, 2e5), ("c", 0.85, 3e5))]}
    pts = pareto_points(sweep)
    assert [p["label"] for p in pts] == ["teacher", "a", "b", "c"]
    assert pts[0]["accuracy"] == pytest.approx(90.0)


def test_views_name_a_missing_artifact(qtbot, finished):
    from workbench_sea.views import scatter_view

    with pytest.raises(InputError) as err:
        scatter_view({"id": "r1"}, [])
    assert "sea-projection" in str(err.value)
    run, artifacts = finished
    broken = [dict(a, path="/nonexistent/projection.npz") if a["kind"] == "sea-projection" else a for a in artifacts]
    with pytest.raises(InputError) as err:
        scatter_view(run, broken)
    assert "/nonexistent/projection.npz" in str(err.value)
