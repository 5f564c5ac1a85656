"""Pipeline ``teacher``: train a large 3D dose network on a cohort.

Train split for training, val split for early stopping (``val_gamma_2_2``: full-volume
gamma 2%/2mm of the prescription, 10 % cutoff; or ``val_loss``) and for keeping the best
weights. The teacher is saved as ``teacher.safetensors`` + ``teacher.json``
(architecture, normalisation, grid; artifact kind ``model``), which ``vmat.distill``
loads through its ``teacher_path``. Test cases are scored (gamma 2%/2mm of the input and
the teacher) as evaluations. Under ``torchrun`` it trains data-parallel (see
`compute.training`); rank 0 alone writes files.

An empty ``cohort_dir`` means the demo cohort: the one ``vmat.cohort`` caches with its
default settings, generated here first when it is not cached yet; ``builtin:tiny`` a tiny
analytic cohort (no dose engines, seconds) for smoke runs and tests.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from workbench.api import ConfigError, Progress, RunContext

from ..compute.cohort import Cohort, load_case, read_cohort
from ..compute.models import build_model, count_parameters, teacher_spec
from ..compute.normalise import Normalisation
from ..compute.teacher_io import load_model, save_model
from ..compute.tiny_cohort import BUILTIN, write_tiny_cohort
from ..compute.tiny_cohort import VERSION as TINY_VERSION
from ..compute.training import (
    GAMMA_CRITERIA,
    CaseArrays,
    Dist,
    FitSettings,
    budget_of,
    case_arrays,
    fit,
    init_distributed,
    score_case,
    train_device,
)
from ..configs import CohortConfig, TeacherConfig

__all__ = ["load_cohort_cases", "resolve_cohort", "run", "train_teacher"]

DEFAULT_PRESCRIPTION_GY = 2.0


def resolve_cohort(config: TeacherConfig, ctx: RunContext) -> Iterator[Progress]:
    """The cohort folder (generating the demo cohort when ``cohort_dir`` is empty and it is
    not cached); returns the `Cohort`."""
    if config.cohort_dir == BUILTIN:  # the tiny analytic cohort (smoke runs, tests)
        root = ctx.cache_dir("vmat-cohorts") / f"tiny-v{TINY_VERSION}"
        if not (root / "cohort.toml").is_file():
            partial = root.with_name(root.name + f".partial-{os.getpid()}")
            write_tiny_cohort(partial)
            if not root.exists():
                partial.rename(root)
        return read_cohort(root)
    if config.cohort_dir:
        return read_cohort(config.cohort_dir)
    from . import cohort as cohort_pipeline

    demo = CohortConfig(seed=0)
    root = cohort_pipeline.cohort_root(demo, ctx.cache_dir("vmat-cohorts"))
    from ..compute.cohort import cohort_ready

    if not cohort_ready(root):
        ctx.log(f"the demo cohort is not cached yet: generating it into {root}")
        for item in cohort_pipeline.run(demo, _Quiet(ctx)):
            yield item
    return read_cohort(root)


class _Quiet:
    """The run's context minus artifacts/evaluations (the cohort's belong to vmat.cohort runs)."""

    def __init__(self, ctx: RunContext):
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def artifact(self, kind: str, path: Any, **meta: Any) -> Path:
        return Path(path)

    def evaluation(self, *args: Any, **kw: Any) -> None:
        pass


def prescription_of(cohort: Cohort, ctx: RunContext | None = None) -> float:
    value = cohort.meta.get("prescription_gy")
    if value is None:
        if ctx is not None:
            ctx.warn(f"{cohort.manifest}: no prescription_gy in [cohort]; normalising doses by "
                     f"{DEFAULT_PRESCRIPTION_GY} Gy")
        return DEFAULT_PRESCRIPTION_GY
    return float(value)


def load_cohort_cases(cohort: Cohort, norm: Normalisation, ctx: RunContext,
                      splits: tuple[str, ...] = ("train", "val", "test")) -> Iterator[Progress]:
    """Read every case of ``splits`` (DICOM, validated) into memory; returns {split: [CaseArrays]}."""
    wanted = [c for c in cohort.cases if c.split in splits]
    out: dict[str, list[CaseArrays]] = {s: [] for s in splits}
    for i, files in enumerate(wanted):
        case = load_case(files, structures=True)
        arrays = case_arrays(case.id, case.split, np.asarray(case.ct.array, np.float32), case.input_dose,
                             case.reference_dose, case.ct.spacing, norm, origin_mm=tuple(case.ct.origin),
                             structures=dict(case.structures or {}), volume=case.ct)
        out[case.split].append(arrays)
        yield Progress(i + 1, len(wanted), f"read {case.id} ({case.split})", "data")
    if not out.get("train"):
        raise ConfigError(f"{cohort.manifest}: the cohort has no train cases", key="cohort_dir")
    return out


def fit_settings(config: TeacherConfig, align: int, *, epochs: int, alpha: float = 0.0,
                 beta: float = 0.0) -> FitSettings:
    b = budget_of(config)
    return FitSettings(epochs=epochs, patches_per_epoch=b.patches_per_epoch, batch_size=b.batch_size,
                       patch_size=b.patch_size, sampler=config.sampler, lr=config.lr,
                       weight_decay=config.weight_decay, early_stop_metric=config.early_stop_metric,
                       patience=b.patience, amp=config.amp, seed=config.seed, align=align, val_every=config.val_every,
                       alpha=alpha, beta=beta)


def train_teacher(config: TeacherConfig, ctx: RunContext, cases: dict[str, list[CaseArrays]], norm: Normalisation,
                  dist_info: Dist, device: torch.device, *, step_offset: int = 0,
                  progress: Callable[[Progress], Progress] | None = None,
                  curves: dict[str, list[tuple[int, float]]] | None = None) -> Iterator[Progress]:
    """Build and train the teacher of ``config``; returns (model, spec, summary)."""
    spec = teacher_spec(config.preset, config.base_channels, config.levels, config.residual)
    torch.manual_seed(config.seed)
    model = build_model(spec)
    ctx.log(f"teacher: residual 3D U-Net, {spec.levels} levels, {spec.base_channels} base channels, "
            f"{count_parameters(model):,} parameters")
    settings = fit_settings(config, spec.multiple, epochs=budget_of(config).epochs)
    summary = yield from fit(model, cases["train"], cases.get("val", []), norm, settings, ctx, phase="teacher",
                             step_offset=step_offset, dist_info=dist_info, device=device, multiple=spec.multiple,
                             progress=progress, curves=curves)
    model.eval()
    return model, spec, summary


def run(config: TeacherConfig, ctx: RunContext) -> Iterator[Progress]:
    t0 = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = train_device(ctx)
    dist_info = init_distributed(device)
    if dist_info.active:
        ctx.log(f"data-parallel training on {dist_info.world} processes "
                f"({'nccl' if device.type == 'cuda' else 'gloo'}); this is rank {dist_info.rank}")
    cohort = yield from resolve_cohort(config, ctx)
    norm = Normalisation(dose_scale_gy=prescription_of(cohort, ctx))
    cases = yield from load_cohort_cases(cohort, norm, ctx)
    ctx.log(f"cohort {cohort.root}: " + ", ".join(f"{len(v)} {k}" for k, v in cases.items()))
    out = ctx.run_dir / "teacher.safetensors"
    if out.is_file() and out.with_suffix(".json").is_file():  # a resumed run whose training had finished
        loaded = load_model(out, role="teacher")
        model, spec, summary = loaded.model, loaded.spec, loaded.meta.get("training", {})
        ctx.log("teacher already trained in this run: reusing it")
    else:
        model, spec, summary = yield from train_teacher(config, ctx, cases, norm, dist_info, device)
        if dist_info.main:
            save_model(out, model, spec, norm, role="teacher",
                       grid={"spacing_mm": list(cases["train"][0].spacing_mm), "patch_size": budget_of(config).patch_size,
                             "multiple": spec.multiple,
                             "example_shape": [-(-n // spec.multiple) * spec.multiple
                                               for n in (cases.get("test") or cases["train"])[0].target.shape]},
                       training={"cohort": str(cohort.root), "preset": config.preset, "sampler": config.sampler,
                                 **{k: v for k, v in (summary or {}).items() if k != "final"}})
    if not dist_info.main:
        return {"rank": dist_info.rank}
    ctx.artifact("model", out, role="teacher", parameters=count_parameters(model))
    results: dict[str, Any] = {"parameters": count_parameters(model), "epochs_run": summary.get("epochs_run")}
    test = cases.get("test", [])
    rates: dict[str, list[float]] = {"input": [], "teacher": []}
    for i, case in enumerate(test):
        _, teacher_scores = score_case(model, case, norm, spec.multiple, device)
        from ..compute.gamma import gamma

        g_in = gamma(case.reference_gy, case.dose_water_gy, spacing=case.spacing_mm, dd=2, dta=2, cutoff=10,
                     prescription=norm.dose_scale_gy, max_gamma=1.01, interp_fraction=5)
        for subject, value in (("input", float(g_in.pass_rate)), ("teacher", teacher_scores["gamma_2_2"])):
            ctx.evaluation(subject, "gamma_2_2", value, GAMMA_CRITERIA, case=case.id)
            rates[subject].append(value)
        yield Progress(i + 1, len(test), f"scored {case.id}", "evaluate")
    for subject, values in rates.items():
        if values:
            ctx.evaluation(subject, "gamma_2_2", float(np.mean(values)), GAMMA_CRITERIA)
            results[f"{subject}_gamma_2_2"] = float(np.mean(values))
    results["seconds"] = time.time() - t0
    ctx.log("teacher done: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in results.items()))
    return results
