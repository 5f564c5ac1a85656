"""Pipeline ``distill``: a compact student from a teacher, a student-only baseline, evaluation.

1. Teacher: ``teacher_path`` (a vmat.teacher run's ``teacher.safetensors``: its JSON
   gives architecture and normalisation, which this run then uses for every case) or,
   when empty, one trained first inside this run with the teacher settings (phase
   ``teacher``; saved as ``teacher.safetensors`` in the run folder, reused on resume).
2. Teacher outputs and the chosen layers' features on every train case, full volume,
   computed once and cached under ``<home>/cache/vmat-teacher-outputs/<teacher hash>``.
3. Student: ground truth + alpha * teacher output + beta * features (phase ``student``),
   then with ``student_only_baseline`` the same student from ground truth alone (phase
   ``student_only``, alpha = beta = 0, same initial weights). Early stopping on the val
   split (gamma 2%/2mm or loss). AMP on CUDA; data-parallel under torchrun.
4. On the test split: ``predictions/<case>.npz`` (CT, dose in water, reference, teacher,
   student, student-only, masks; artifact ``vmat-case-doses``), the student's dose as
   RTDOSE on the CT's frame of reference (``rtdose``), `evaluate_case` of input, teacher,
   student and student-only (evaluations per case and mean/sd), ``evaluation.json``
   (``vmat-evaluation``) with the footprint of teacher and student, and the HTML report.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from workbench.api import ConfigError, Progress, RunContext

from ..compute.models import build_model, count_parameters, layer_stride, student_spec, teacher_spec
from ..compute.normalise import Normalisation
from ..compute.patches import predict_volume
from ..compute.teacher_io import LoadedModel, load_model, save_model
from ..compute.training import (
    GAMMA_CRITERIA,
    CaseArrays,
    StudentWithAdapters,
    TeacherCache,
    budget_of,
    check_layer_pairs,
    fit,
    init_distributed,
    parse_layer_pairs,
    teacher_targets,
    train_device,
)
from ..configs import DistillConfig
from .teacher import fit_settings, load_cohort_cases, prescription_of, resolve_cohort, train_teacher

__all__ = ["build_model_for_profile", "run"]

SUBJECTS = ("input", "teacher", "student", "student_only")
_CRITERIA = {"gamma_2_2": GAMMA_CRITERIA, "gamma_3_3": "3%/3mm 10%", "gamma_1_1": "1%/1mm 10%"}


class _Overall:
    """Maps each phase's progress onto one bar for the whole run (weights = expected work)."""

    def __init__(self, weights: dict[str, float]):
        self.weights, self.total = weights, float(sum(weights.values()))
        self.offsets, acc = {}, 0.0
        for k, w in weights.items():
            self.offsets[k] = acc
            acc += w

    def __call__(self, phase: str):
        w, off = self.weights[phase], self.offsets[phase]

        def map_(p: Progress) -> Progress:
            frac = (p.done / p.total) if p.total else 0.0
            return Progress(off + w * min(1.0, frac), self.total, f"{phase}: {p.message}", p.phase or phase)

        return map_


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(config: DistillConfig, ctx: RunContext) -> Iterator[Progress]:
    t0 = time.time()
    device = train_device(ctx)
    dist_info = init_distributed(device)
    if dist_info.active:
        ctx.log(f"data-parallel training on {dist_info.world} processes "
                f"({'nccl' if device.type == 'cuda' else 'gloo'}); this is rank {dist_info.rank}")
    budget = budget_of(config)
    train_teacher_here = not config.teacher_path
    kd_on = config.alpha > 0 or config.beta > 0
    phases = {"data": 1.0, "teacher": float(budget.epochs) if train_teacher_here else 0.0, "cache": 0.5,
              "student": float(budget.student_epochs),
              "student_only": float(budget.student_epochs) if config.student_only_baseline and kd_on else 0.0,
              "evaluate": 1.5}
    overall = _Overall({k: v for k, v in phases.items() if v > 0})

    # -- teacher given: its normalisation rules this run --------------------------------------------
    loaded: LoadedModel | None = None
    if config.teacher_path:
        loaded = load_model(config.teacher_path, role="teacher")
        ctx.log(f"teacher {loaded.path}: {loaded.spec.arch}, {count_parameters(loaded.model):,} parameters")
    # refuse unknown feature layers before any training
    s_spec = student_spec(config.preset, config.student, config.student_channels, config.residual)
    pairs = parse_layer_pairs(config.feature_layers) if config.beta > 0 else []
    t_probe = loaded.model if loaded is not None else build_model(
        teacher_spec(config.preset, config.base_channels, config.levels, config.residual))
    check_layer_pairs(pairs, t_probe, build_model(s_spec))
    cohort = yield from resolve_cohort(config, ctx)
    norm = loaded.normalisation if loaded is not None else Normalisation(dose_scale_gy=prescription_of(cohort, ctx))
    if loaded is not None and "prescription_gy" in cohort.meta and \
            abs(float(cohort.meta["prescription_gy"]) - norm.dose_scale_gy) > 1e-6:
        ctx.warn(f"the teacher was trained with doses scaled by {norm.dose_scale_gy} Gy; this cohort prescribes "
                 f"{cohort.meta['prescription_gy']} Gy")
    cases: dict[str, list[CaseArrays]] = yield from _mapped(load_cohort_cases(cohort, norm, ctx), overall("data"))
    ctx.log(f"cohort {cohort.root}: " + ", ".join(f"{len(v)} {k}" for k, v in cases.items()))

    # -- teacher trained here -----------------------------------------------------------------------
    teacher_file = ctx.run_dir / "teacher.safetensors"
    step = 0
    curves: dict[str, list[tuple[int, float]]] = {}
    if loaded is None:
        if teacher_file.is_file() and teacher_file.with_suffix(".json").is_file():
            loaded = load_model(teacher_file, role="teacher")
            ctx.log("teacher already trained in this run (resume): reusing it")
        else:
            model, spec, summary = yield from train_teacher(config, ctx, cases, norm, dist_info, device,
                                                            progress=overall("teacher"), curves=curves)
            if dist_info.main:
                save_model(teacher_file, model, spec, norm, role="teacher",
                           grid={"spacing_mm": list(cases["train"][0].spacing_mm), "patch_size": budget.patch_size,
                                 "multiple": spec.multiple},
                           training={"cohort": str(cohort.root), "preset": config.preset,
                                     **{k: v for k, v in (summary or {}).items() if k != "final"}})
            loaded = LoadedModel(model, spec, norm, path=teacher_file)
        step = budget.epochs
    teacher, t_spec = loaded.model.to(device).eval(), loaded.spec
    for p in teacher.parameters():
        p.requires_grad_(False)

    # -- student -------------------------------------------------------------------------------------
    torch.manual_seed(config.seed + 1)
    student = build_model(s_spec)
    init_state = {k: v.clone() for k, v in student.state_dict().items()}
    n_t, n_s = count_parameters(teacher), count_parameters(student)
    ctx.log(f"student {config.student}: {n_s:,} parameters = 1/{n_t / n_s:.1f} of the teacher's {n_t:,}")
    if n_s * 10 > n_t:
        ctx.warn(f"the student has more than 1/10 of the teacher's parameters ({n_s:,} vs {n_t:,})")
    align = max(t_spec.multiple, s_spec.multiple)
    multiple = align

    # -- teacher targets, cached per case -------------------------------------------------------------
    targets = None
    if kd_on:
        key = hashlib.sha256(json.dumps([_file_sha(loaded.path) if loaded.path and loaded.path.is_file()
                                         else "in-memory", sorted(t for t, _ in pairs), multiple]).encode()).hexdigest()
        cache = TeacherCache(ctx.cache_dir("vmat-teacher-outputs") / key[:16] if loaded.path else None)
        targets = []
        train = cases["train"]
        for i, case in enumerate(train):
            targets.append(cache.get(case, lambda c=case: teacher_targets(teacher.cpu(), c.inputs,
                                                                          [t for t, _ in pairs], multiple)))
            yield overall("cache")(Progress(i + 1, len(train), f"teacher outputs {case.id}", "cache"))
        teacher.to(device)
    scales = {name: float(np.mean(np.concatenate([t.features[name].astype(np.float32).ravel() for t in targets]) ** 2))
              + 1e-8 for name, _ in pairs} if pairs and targets else {}
    strides = {t: layer_stride(teacher, t) for t, _ in pairs}

    grid = {"spacing_mm": list(cases["train"][0].spacing_mm), "patch_size": budget.patch_size, "multiple": multiple,
            "example_shape": list(_example_shape(cases, multiple))}

    def train_student(phase: str, alpha: float, beta: float, use_pairs, offset: int):
        """Train one student phase, or reuse its saved weights when a resumed run had finished it."""
        path = ctx.run_dir / f"{phase}.safetensors"
        if path.is_file() and path.with_suffix(".json").is_file():
            ctx.log(f"{phase} already trained in this run (resume): reusing it")
            return load_model(path, role="student").model
        net = build_model(s_spec)
        net.load_state_dict(init_state)
        wrapped = StudentWithAdapters(net, use_pairs, teacher if use_pairs else None, scales)
        settings = fit_settings(config, align, epochs=budget.student_epochs, alpha=alpha, beta=beta)
        summary = yield from fit(wrapped, cases["train"], cases.get("val", []), norm, settings, ctx, phase=phase,
                                 step_offset=offset, dist_info=dist_info, device=device, multiple=multiple,
                                 teacher=targets if (alpha > 0 or beta > 0) else None, feature_strides=strides,
                                 progress=overall(phase), curves=curves)
        net = net.eval().cpu()
        # each rank writes into its own run folder (a follower's is temporary)
        save_model(path, net, s_spec, norm, role="student", grid=grid,
                   training={"family": config.student, "alpha": alpha, "beta": beta,
                             "feature_layers": config.feature_layers if beta > 0 else "", "teacher_parameters": n_t,
                             **{k: v for k, v in (summary or {}).items() if k != "final"}})
        return net

    student = yield from train_student("student", config.alpha, config.beta, pairs, step)
    step += budget.student_epochs
    baseline = None
    if config.student_only_baseline and kd_on:
        baseline = yield from train_student("student_only", 0.0, 0.0, [], step)
    elif config.student_only_baseline:
        ctx.log("alpha = beta = 0: the student is itself the student-only baseline")
    if not dist_info.main:
        return {"rank": dist_info.rank}
    ctx.artifact("model", ctx.run_dir / "student.safetensors", role="student", parameters=n_s)
    if baseline is not None:
        ctx.artifact("model", ctx.run_dir / "student_only.safetensors", role="student_only", parameters=n_s)
    if loaded.path is not None and loaded.path.parent != ctx.run_dir:  # profile/export find it beside the student
        save_model(ctx.run_dir / "teacher.safetensors", teacher.cpu(), t_spec, norm, role="teacher",
                   grid=loaded.grid, training=loaded.meta.get("training", {}))
    else:
        _update_grid(ctx.run_dir / "teacher.safetensors", grid)
    ctx.artifact("model", ctx.run_dir / "teacher.safetensors", role="teacher", parameters=n_t)
    teacher.cpu()

    # -- test split: predictions, RTDOSE, evaluation, report --------------------------------------------
    models = {"teacher": teacher, "student": student.cpu()}
    if baseline is not None:
        models["student_only"] = baseline.cpu()
    elif not kd_on:
        models["student_only"] = student.cpu()
    result = yield from evaluate_test(ctx, cases.get("test", []), norm, models, multiple, overall("evaluate"),
                                      footprint=_footprint(ctx, teacher, student, cases, multiple), curves=curves)
    result.update(seconds=time.time() - t0, student_parameters=n_s, teacher_parameters=n_t)
    ctx.log("distill done: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in result.items()))
    return result


def _mapped(gen, f):
    """``yield from gen`` with every item passed through ``f``; returns gen's value."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        yield f(item)


def _example_shape(cases: dict[str, list[CaseArrays]], multiple: int) -> tuple[int, int, int]:
    any_case = (cases.get("test") or cases["train"])[0]
    return tuple(-(-n // multiple) * multiple for n in any_case.target.shape)  # type: ignore[return-value]


def _update_grid(path: Path, grid: dict[str, Any]) -> None:
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        meta["grid"] = {**meta.get("grid", {}), **grid}
        meta_path.write_text(json.dumps(meta, indent=1))


def _latency_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return float(1000 * np.median(times))


def _footprint(ctx: RunContext, teacher, student, cases, multiple) -> dict[str, Any]:
    """Teacher and student through the host profiler (parameters, storage, activation memory,
    MACs, CPU latency of one full volume, batch 1); a plain timing where the context has no
    profiler (e.g. a bare test context)."""
    x = torch.zeros((1, 2) + _example_shape(cases, multiple))
    out: dict[str, Any] = {}
    for name, m in (("teacher", teacher), ("student", student)):
        m = m.cpu().eval()
        try:
            prof = ctx.profile(m, x, device="cpu", warmup=2, repeats=20)
        except NotImplementedError:
            prof = {"parameters": count_parameters(m), "latency_median_ms": _latency_ms(m, x),
                    "input_shapes": [list(x.shape)], "threads": torch.get_num_threads(), "method": "plain timing"}
        out[name] = prof
        # run-level evaluations too, so the Compare dialog's Pareto plot can put cost beside gamma
        for key in ("parameters", "storage_bytes", "activation_peak_bytes", "macs", "latency_median_ms"):
            if isinstance(prof.get(key), (int, float)):
                ctx.evaluation(name, key, float(prof[key]), f"cpu, one volume {list(x.shape[2:])}, batch 1")
    out["ratios"] = {
        "latency_cpu": out["teacher"]["latency_median_ms"] / max(out["student"]["latency_median_ms"], 1e-9),
        "parameters": out["teacher"]["parameters"] / max(out["student"]["parameters"], 1)}
    return out


def evaluate_test(ctx: RunContext, test: list[CaseArrays], norm: Normalisation, models: dict[str, torch.nn.Module],
                  multiple: int, progress, footprint: dict[str, Any] | None = None,
                  curves: dict[str, Any] | None = None) -> Iterator[Progress]:
    """Predict, write and score every test case (see the module doc); returns summary figures."""
    from ..compute.dicom_io import write_rtdose
    from ..compute.evaluation import evaluate_case, summarise

    if not test:
        ctx.warn("the cohort has no test cases: nothing to evaluate")
        return {}
    pred_dir = ctx.run_dir / "predictions"
    rtdose_dir = ctx.run_dir / "rtdose"
    pred_dir.mkdir(parents=True, exist_ok=True)
    rtdose_dir.mkdir(parents=True, exist_ok=True)
    per_case: dict[str, dict[str, dict[str, float]]] = {s: {} for s in ("input", *models)}
    for i, case in enumerate(test):
        doses = {"input": case.dose_water_gy}
        for name, m in models.items():
            doses[name] = norm.to_gy(predict_volume(m, case.inputs, multiple=multiple))
        arrays = {"ct": case.ct_hu, "dose_water": case.dose_water_gy, "reference": case.reference_gy,
                  "student": doses["student"], "spacing_mm": np.asarray(case.spacing_mm, np.float64),
                  "origin_mm": np.asarray(case.origin_mm, np.float64),
                  "prescription_gy": np.float64(norm.dose_scale_gy)}
        for extra in ("teacher", "student_only"):
            if extra in doses:
                arrays[extra] = doses[extra]
        for sname, mask in case.structures.items():
            arrays[f"mask_{sname}"] = np.asarray(mask, bool)
        path = pred_dir / f"{case.id}.npz"
        np.savez_compressed(path, **arrays)
        ctx.artifact("vmat-case-doses", path, case=case.id)
        if case.volume is not None:
            rt = write_rtdose(rtdose_dir / f"{case.id}_student.dcm", case.volume.with_array(doses["student"]),
                              reference=case.volume, series_description="Workbench student dose",
                              comment="predicted by the distilled student (vmat.distill)",
                              heterogeneity_correction=("IMAGE",))
            ctx.artifact("rtdose", rt, case=case.id, model="student")
        for subject, dose in doses.items():
            metrics = evaluate_case(case.reference_gy, dose, case.spacing_mm, structures=case.structures or None,
                                    prescription_gy=norm.dose_scale_gy)
            per_case[subject][case.id] = metrics
            for metric, value in metrics.items():
                if np.isfinite(value):
                    ctx.evaluation(subject, metric, value, _CRITERIA.get(metric, ""), case=case.id)
        yield progress(Progress(i + 1, len(test), f"evaluated {case.id}", "evaluate"))
    subjects = {}
    result: dict[str, Any] = {}
    for subject, pc in per_case.items():
        summary = summarise(pc)
        subjects[subject] = {"per_case": pc, "summary": summary}
        for metric, stats in summary.items():
            if np.isfinite(stats.get("mean", float("nan"))):
                ctx.evaluation(subject, metric, stats["mean"], _CRITERIA.get(metric, ""))
                ctx.evaluation(subject, f"{metric}_sd", stats.get("sd", 0.0), _CRITERIA.get(metric, ""))
        if "gamma_2_2" in summary:
            result[f"{subject}_gamma_2_2"] = float(summary["gamma_2_2"]["mean"])
    eval_path = ctx.run_dir / "evaluation.json"
    eval_path.write_text(json.dumps({"subjects": subjects, "footprint": footprint or {}}, indent=1,
                                    default=float, allow_nan=True))
    ctx.artifact("vmat-evaluation", eval_path)
    try:
        from ..report import write_report
    except ImportError as exc:  # the report module is optional for the numbers above
        ctx.warn(f"no HTML report: {exc}")
    else:
        report = write_report(ctx.run_dir, eval_path, pred_dir, footprint=footprint, curves=curves or None)
        ctx.artifact("report", report)
    return result


# -- profile / export target ---------------------------------------------------------------------------
def build_model_for_profile(run_dir: Path, config: dict, name: str):
    """Profile target: the run's ``teacher``, ``student`` or ``student_only`` and a full-volume
    batch-1 input of the run's grid (read from the model's JSON; never executes code)."""
    path = Path(run_dir) / f"{name}.safetensors"
    if name not in ("teacher", "student", "student_only"):
        raise ConfigError(f"no model {name!r} in a vmat.distill run (teacher, student, student_only)", key="model")
    loaded = load_model(path)
    shape = loaded.grid.get("example_shape")
    if not shape:
        m = loaded.spec.multiple
        shape = [-(-48 // m) * m, 64, 64]
    return loaded.model, torch.zeros(1, 2, *[int(s) for s in shape])
