"""sea.sweep: samplers x reductions x output sizes x widths, each combination distilled and
evaluated on the same teacher embeddings (computed, or read from the cache, once).

Each combination keeps its own folder under ``combos/<name>`` (student, reduction, results)
and reports metrics as ``<name>/<metric>`` and evaluations with subject ``<name>:student``. A
finished combination is not redone when the run is resumed. The teacher is evaluated and
profiled once; the from-scratch baseline once per student architecture. ``sweep.json``
(artifact ``sea-sweep``) holds one row per combination for the Pareto view.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from workbench.api import Progress, RunContext

from ..configs import DistillConfig, SweepConfig
from . import distill as D

SWEPT = ("samplers", "reductions", "reduced_dims", "student_widths")


def combinations(config: SweepConfig, teacher_dim: int | None = None) -> list[DistillConfig]:
    """One DistillConfig per distinct combination (reduction none ignores the output size)."""
    shared = config.model_dump(exclude=set(SWEPT))
    out, seen = [], set()
    for sampler, reduction, dim, width in itertools.product(config.samplers, config.reductions, config.reduced_dims,
                                                            config.student_widths):
        key = (sampler, reduction, None if reduction == "none" else dim, width)
        if key in seen:
            continue
        seen.add(key)
        out.append(DistillConfig(**shared, sampler=sampler, reduction=reduction, reduced_dim=dim, student_width=width))
    return out


def combo_name(c: DistillConfig) -> str:
    dim = "full" if c.reduction == "none" else str(c.reduced_dim)
    return f"{c.sampler}-{c.reduction}-{dim}-w{c.student_width:g}"


class ComboContext:
    """The run's context seen by one combination: its own folder, prefixed metrics and subjects,
    no checkpoints (the sweep resumes per finished combination instead)."""

    def __init__(self, parent: RunContext, name: str):
        self._parent, self.name = parent, name
        self.run_dir = parent.run_dir / "combos" / name
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._parent, attr)

    def metric(self, key: str, value: float, step: int) -> None:
        self._parent.metric(f"{self.name}/{key}", value, step)

    def evaluation(self, subject: str, metric: str, value: float, criteria: str = "", case: str = "") -> None:
        self._parent.evaluation(f"{self.name}:{subject}", metric, value, criteria, case)

    def artifact(self, kind: str, path, **meta: Any) -> Path:
        return self._parent.artifact(kind, path, combo=self.name, **meta)

    def save_checkpoint(self, tensors, state, step):
        return self.run_dir

    def load_checkpoint(self):
        return None


def run(config: SweepConfig, ctx: RunContext):
    import torch

    from ..compute.clips import mean_pool, split_clips
    from ..compute.downstream import folds_to_test
    from ..compute.students import example_input
    from ..compute.teachers import load_teacher

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    combos = combinations(config)
    teacher = load_teacher(config.teacher)
    ctx.log(f"sweep of {len(combos)} combination(s): {', '.join(combo_name(c) for c in combos)}")
    data, root = yield from D.load_frames(combos[0], ctx, teacher)
    folds = folds_to_test(data.folds, config.eval_folds)
    train_clips, val_clips = split_clips(data.n_clips, config.val_fraction, config.seed)
    teacher_acc = D.evaluate(ctx, config, "teacher", mean_pool(data.teacher, data.clip, data.n_clips), data, folds)
    teacher_profile = D.profile_models(config, ctx, {"teacher": (teacher.model, torch.zeros(1, teacher.window_samples))}
                                       )["teacher"] if config.profile else {}
    rows: list[dict] = []
    scratch: dict[tuple, dict] = {}
    for n, combo in enumerate(combos):
        name = combo_name(combo)
        cctx = ComboContext(ctx, name)
        done = cctx.run_dir / "results.json"
        if done.is_file():  # finished before an interruption
            rows.append(json.loads(done.read_text()))
            ctx.log(f"{name}: already done, kept")
            continue
        yield Progress(n, len(combos), name, phase="sweep")
        idx, cov, reduction, reduced = D.sample_and_reduce(combo, cctx, data)
        student, spec, summary, history = yield from D.train_student(combo, cctx, data, reduced, train_clips, val_clips)
        frames = D.embed_frames(student, data)
        acc = D.evaluate(cctx, combo, "student", mean_pool(frames, data.clip, data.n_clips), data, folds)
        red_acc = D.evaluate(cctx, combo, "reduced_teacher", mean_pool(reduced, data.clip, data.n_clips), data, folds)
        prof = D.profile_models(combo, cctx, {"student": (student, example_input(spec))})["student"] if config.profile else {}
        D.save_student(cctx, student, spec, reduction, combo, teacher)
        (cctx.run_dir / "history.json").write_text(json.dumps({"history": history, "summary": summary}, default=float))
        cctx.artifact("sea-training", cctx.run_dir / "history.json")
        row = {"name": name, "sampler": combo.sampler, "reduction": combo.reduction, "reduced_dim": spec.out_dim,
               "student_width": spec.width, "accuracy": acc, "reduced_teacher_accuracy": red_acc,
               "coverage": cov, "epochs_run": summary["epochs_run"],
               **{k: prof.get(k) for k in D.PROFILE_KEYS}}
        if config.scratch_baseline:
            key = spec  # frozen: one from-scratch baseline per architecture
            if key not in scratch:
                bodies = {}
                for fold in folds:
                    body = yield from D.train_scratch(combo, ctx, data, spec, fold)
                    bodies[fold] = mean_pool(D.embed_frames(body, data), data.clip, data.n_clips)
                scratch[key] = D.evaluate(ctx, combo, f"scratch-{spec.out_dim}-w{spec.width:g}", lambda f: bodies[f],
                                          data, folds)
            row["scratch_accuracy"] = scratch[key]
        done.write_text(json.dumps(row, indent=2, default=float))
        rows.append(row)
        yield Progress(n + 1, len(combos), name, phase="sweep")

    table = sweep_table(config, teacher_acc, teacher_profile, rows)
    out = {"teacher": {"accuracy": teacher_acc, **{k: teacher_profile.get(k) for k in D.PROFILE_KEYS}},
           "rows": rows, "folds": folds, "clips": data.n_clips, "dataset": str(root), "table": table}
    (ctx.run_dir / "sweep.json").write_text(json.dumps(out, indent=2, default=float))
    ctx.artifact("sea-sweep", ctx.run_dir / "sweep.json")
    ctx.log(table)
    best = max(rows, key=lambda r: r["accuracy"]["mean"])
    return {"table": table, "combinations": len(rows), "best": best["name"], "best_accuracy": best["accuracy"]["mean"]}


def sweep_table(config: SweepConfig, teacher_acc: dict, teacher_profile: dict, rows: list[dict]) -> str:
    head = f"{'combination':<30}{'accuracy':>16}{'reduced teacher':>17}{'storage':>11}{'activations':>13}{'latency':>10}"
    lines = [f"SEA sweep, teacher {config.teacher}: {teacher_acc['mean'] * 100:.1f} ± {teacher_acc['sd'] * 100:.1f} %"
             + (f", {D._mb(teacher_profile['storage_bytes'])}, {D._mb(teacher_profile['activation_peak_bytes'])} "
                f"activations" if teacher_profile else ""), "", head]
    for r in rows:
        a, ra = r["accuracy"], r["reduced_teacher_accuracy"]
        cost = (f"{D._mb(r['storage_bytes']):>11}{D._mb(r['activation_peak_bytes']):>13}"
                f"{r['latency_median_ms']:>8.2f}ms" if r.get("storage_bytes") else "")
        lines.append(f"{r['name']:<30}{a['mean'] * 100:>8.1f} ± {a['sd'] * 100:4.1f}%"
                     f"{ra['mean'] * 100:>15.1f} %{cost}")
    return "\n".join(lines)
