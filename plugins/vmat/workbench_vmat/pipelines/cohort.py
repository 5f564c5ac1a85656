"""Pipeline ``cohort``: generate the synthetic prostate VMAT cohort as DICOM (cached).

The cohort lands in ``<home>/cache/vmat-cohorts/<key>``, the key made of the preset, the
number of cases, the voxel size, the seed, the reference engine, the histories and the
generator version; a finished cohort is reused, an interrupted one resumes case by case.
For every case the input (water) dose is compared with the reference: gamma 2%/2mm
and 1%/1mm (global, % of the prescription, 10 % cutoff) and the mean absolute
difference in the high-dose region, recorded as evaluations of subject ``input``.
A CT slice with the reference dose is saved as a PNG artifact.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

from workbench.api import Progress, RunContext, WorkbenchError

from ..compute.cohort import (
    MANIFEST_TOML,
    SUMMARY,
    CohortSettings,
    cohort_ready,
    generate_cohort,
)
from ..configs import CohortConfig

__all__ = ["PRESETS", "SMOKE", "cohort_root", "resolve_settings", "run"]

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"cases": 8, "spacing_mm": 4.0, "histories": 10_000_000, "denoise_sigma_mm": 2.4},
    "paper": {"cases": 30, "spacing_mm": 3.0, "histories": 200_000_000, "denoise_sigma_mm": 0.0},
}

#: a tiny run for the contract tests: 3 cases at 8 mm with the deterministic reference
SMOKE: dict[str, Any] = {"cases": 3, "spacing_mm": 8.0, "reference": "pencil-beam", "cp_spacing_deg": 12.0}

_CRITERIA = {"gamma_2%/2mm": "2%/2mm, 10% cutoff, global (% of prescription)",
             "gamma_1%/1mm": "1%/1mm, 10% cutoff, global (% of prescription)",
             "mae_high_dose_pct": "mean |input - reference| where reference >= 80% of prescription, % of prescription"}
_METRIC = {"gamma_2%/2mm": "gamma_pass_rate", "gamma_1%/1mm": "gamma_pass_rate", "mae_high_dose_pct": "mae_high_dose"}


def resolve_settings(config: CohortConfig, seed: int | None = None) -> CohortSettings:
    """The concrete generation settings of a config (preset defaults filled in)."""
    p = PRESETS[config.preset]
    cases = config.cases or p["cases"]
    splits: tuple[str, ...] = ()
    if config.preset == "paper" and not config.cases:
        splits = ("train",) * 20 + ("test",) * 10
        splits = tuple(_permute(splits, seed if seed is not None else config.seed))
    reference = "monte-carlo" if config.reference == "auto" else config.reference
    return CohortSettings(
        preset=config.preset,
        cases=int(cases),
        spacing_mm=float(config.spacing_mm or p["spacing_mm"]),
        seed=int(config.seed if seed is None else seed),
        reference=reference,
        histories=int(config.histories or p["histories"]) if reference == "monte-carlo" else 0,
        denoise_sigma_mm=float(p["denoise_sigma_mm"]) if reference == "monte-carlo" else 0.0,
        cp_spacing_deg=float(config.cp_spacing_deg),
        splits=splits,
    )


def _permute(labels: tuple[str, ...], seed: int) -> list[str]:
    import numpy as np

    order = np.random.default_rng([int(seed), 0x7A9]).permutation(len(labels))
    return [labels[int(k)] for k in order]


def cohort_root(config: CohortConfig, cache_dir: str | Path, seed: int | None = None) -> Path:
    """Where the cohort of ``config`` lives (or will live) under ``cache_dir`` (vmat-cohorts)."""
    return Path(cache_dir) / resolve_settings(config, seed).key()


def _check_engines(reference: str) -> None:
    """The dose engines are an optional extra of the plugin: say how to get them."""
    import importlib.util

    needed = ["pydosert"] + (["pyradmc", "warp"] if reference == "monte-carlo" else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise WorkbenchError(f"generating the cohort needs {', '.join(missing)}: "
                             "pip install 'workbench-vmat[cohort]' (pydosert, pyradmc[warp])")


def run(config: CohortConfig, ctx: RunContext) -> Iterator[Progress]:
    settings = resolve_settings(config, ctx.seed)
    cache = ctx.cache_dir("vmat-cohorts")
    root = cache / settings.key()
    device = "cuda:0" if str(ctx.device).startswith("cuda") and ":" not in str(ctx.device) else str(ctx.device)
    if cohort_ready(root):
        ctx.log(f"reusing the cached cohort {root}")
        yield Progress(1, 1, "cohort cached", "cohort")
    else:
        _check_engines(settings.reference)
        if settings.preset == "paper" and not device.startswith("cuda"):
            ctx.warn("the paper preset's Monte Carlo takes hours on a CPU; generate it on a GPU")
        partial = cache / (settings.key() + ".partial")
        ctx.log(f"generating {settings.cases} cases at {settings.spacing_mm:g} mm into {root} "
                f"(reference: {settings.reference}" + (f", {settings.histories:.3g} histories" if settings.histories else "")
                + f", device {device})")
        yield from generate_cohort(partial, settings, device=device, mc_home=ctx.cache_dir("pyradmc-home"),
                                   log=ctx.log)
        if root.exists():  # another run finished the same cohort meanwhile
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.rename(root)
    summary = json.loads((root / SUMMARY).read_text())
    for case in summary["cases"]:
        for key, value in case["metrics"].items():
            if key in _METRIC:
                ctx.evaluation("input", _METRIC[key], value, _CRITERIA[key], case=case["id"])
    for key, value in summary["aggregate"].items():
        if key in _METRIC:
            ctx.evaluation("input", _METRIC[key], value, _CRITERIA[key])
    agg = summary["aggregate"]
    ctx.log(f"input vs reference over {len(summary['cases'])} cases: gamma 2%/2mm {agg.get('gamma_2%/2mm', float('nan')):.1f} %, "
            f"1%/1mm {agg.get('gamma_1%/1mm', float('nan')):.1f} %, high-dose MAE {agg.get('mae_high_dose_pct', float('nan')):.2f} % "
            f"of the prescription")
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    ctx.artifact("vmat-cohort", root / MANIFEST_TOML, root=str(root), cases=len(summary["cases"]),
                 preset=settings.preset, reference=settings.reference)
    report = ctx.run_dir / "cohort_summary.json"
    report.write_text(json.dumps(summary, indent=1))
    ctx.artifact("report", report)
    # a preview: the first test case (else the first case) with a prosthesis-free pelvis preferred
    cases = summary["cases"]
    pick = next((c for c in cases if c["split"] == "test" and c["anatomy"]["prosthesis"] == "none"),
                next((c for c in cases if c["anatomy"]["prosthesis"] == "none"), cases[0]))
    src = root / pick["files"]["preview"]
    if src.is_file():
        dst = ctx.run_dir / f"dose_slice_{pick['id']}.png"
        shutil.copyfile(src, dst)
        ctx.artifact("image", dst, case=pick["id"], caption="reference dose on the isocentre slice (colour wash "
                     "20-110 % of the prescription; white: 95 % isodose, cyan: 50 %; red: PTV)")
