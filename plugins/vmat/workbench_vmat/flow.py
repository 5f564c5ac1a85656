"""The guided flow of vmat.distill and its step previews.

Declared for the host's guided flow (teacher → data → sampling → student → distill →
inspect). The declaration imports only the API; previews import the plugin's compute modules
when they run (off the GUI thread) and return plain data. They use the pipeline's own pieces —
the cohort reader and case loader, the patch sampler, the model presets — so the preview shows
what the run will do.
"""
from __future__ import annotations

from workbench.api import FlowSpec, StepSpec

_F = "workbench_vmat.flow"
#: cases loaded in full by the data preview (the others are checked for their files only)
PREVIEW_CASES = 6
#: above this many MACs per patch the teacher preview skips the timed passes (Inspect measures them)
LATENCY_MAX_MACS = 20e9

DISTILL_FLOW = FlowSpec(
    "distill",
    title="Distill a compact dose engine, step by step",
    description="CT + dose in water → heterogeneity-corrected patient dose: a large 3D teacher, a compact student.",
    steps=(
        StepSpec("teacher", ("teacher_path", "preset", "base_channels", "levels", "residual"),
                 f"{_F}:teacher_preview",
                 description="The large 3D network (a residual U-Net) that maps CT and dose in water to the patient "
                 "dose: a saved teacher file, or one trained inside the run at the preset's size. Its cost is "
                 "measured here."),
        StepSpec("data", ("cohort_dir",), f"{_F}:data_preview",
                 description="The patient cohort: a folder with a manifest (cohort.toml / cohort.csv) of DICOM CT, "
                 "dose in water, reference dose and structures per case, split train/val/test. Empty: the "
                 "generated demo cohort; builtin:tiny: a tiny analytic cohort."),
        StepSpec("sampling", ("sampler", "patch_size", "patches_per_epoch", "batch_size"), f"{_F}:sampling_preview",
                 description="Where training patches come from: uniformly, weighted to the high-dose region, to the "
                 "dose gradient (penumbra), or balanced across cases. The preview draws one epoch of patch centres "
                 "over a CT slice."),
        StepSpec("student", ("student", "student_channels"), f"{_F}:student_preview",
                 description="The compact student family and width; parameters, storage, activation memory and "
                 "MACs predicted before training, next to the teacher's."),
        StepSpec("distill", ("epochs", "student_epochs", "lr", "alpha", "beta", "feature_layers",
                             "student_only_baseline", "device"),
                 description="Train (or load) the teacher, then the student from ground truth + alpha × teacher "
                 "dose + beta × features, and a student-only baseline; evaluate on the test cases by 3D gamma."),
        StepSpec("inspect", description="Dose, difference and gamma maps per test case, pass rates and DVH metrics "
                 "of input, teacher and students, footprint and latency; export the student and the run card."),
    ),
)


# -- helpers -----------------------------------------------------------------------------------------
def _budget(config):
    from .compute.training import budget_of

    return budget_of(config)


def _teacher(config):
    """(model, spec, source text): the saved teacher, or the one the run would train."""
    from .compute.models import build_model, teacher_spec

    if config.teacher_path:
        from .compute.teacher_io import load_model

        loaded = load_model(config.teacher_path, role="teacher")
        return loaded.model, loaded.spec, f"saved teacher {config.teacher_path}"
    spec = teacher_spec(config.preset, config.base_channels, config.levels, config.residual)
    return build_model(spec), spec, f"the {config.preset} preset's teacher (trained inside the run)"


def _patch_input(spec, patch: int):
    import torch

    m = spec.multiple
    edge = max(m, -(-patch // m) * m)
    return torch.zeros(1, 2, edge, edge, edge), edge


def _arch_rows(model) -> list[list]:
    """Stages of the network with their parameter counts (top two levels of the module tree)."""
    rows = []
    for name, child in model.named_children():
        grand = list(child.named_children())
        if grand and len(grand) <= 8:
            for sub, g in grand:
                rows.append([f"{name}.{sub}", type(g).__name__, sum(p.numel() for p in g.parameters())])
        else:
            rows.append([name, type(child).__name__, sum(p.numel() for p in child.parameters())])
    return rows[:60]


def _fmt(prof: dict) -> dict[str, str]:
    from workbench.api import human_bytes, human_count

    return {"parameters": f"{prof['parameters']:,d}", "storage": human_bytes(prof["storage_bytes"]),
            "activation memory": human_bytes(prof["activation_peak_bytes"]), "MACs": human_count(prof["macs"])}


def _resolve_cohort(config, ctx):
    """The cohort the run would use, without generating the (slow) demo cohort: (Cohort | None, note)."""
    import os

    from .compute.cohort import cohort_ready, read_cohort
    from .compute.tiny_cohort import BUILTIN, VERSION, write_tiny_cohort

    if config.cohort_dir == BUILTIN:
        root = ctx.cache_dir("vmat-cohorts") / f"tiny-v{VERSION}"
        if not (root / "cohort.toml").is_file():
            partial = root.with_name(root.name + f".partial-{os.getpid()}")
            write_tiny_cohort(partial)
            if not root.exists():
                partial.rename(root)
        return read_cohort(root), "the built-in tiny analytic cohort"
    if config.cohort_dir:
        return read_cohort(config.cohort_dir), config.cohort_dir
    from .configs import CohortConfig
    from .pipelines.cohort import cohort_root

    root = cohort_root(CohortConfig(seed=0), ctx.cache_dir("vmat-cohorts"))
    if not cohort_ready(root):
        return None, str(root)
    return read_cohort(root), f"the demo cohort at {root}"


def _axial(volume, z: int):
    import numpy as np

    return np.asarray(volume[int(z)], dtype=np.float32)


# -- previews ----------------------------------------------------------------------------------------
def teacher_preview(config, ctx):
    from workbench.api import Preview, Table

    model, spec, source = _teacher(config)
    budget = _budget(config)
    example, edge = _patch_input(spec, budget.patch_size)
    prof = ctx.profile(model, example, latency=False)
    figures = _fmt(prof)
    note = ""
    if prof["macs"] <= LATENCY_MAX_MACS:
        timed = ctx.profile(model, example)
        figures["latency (median)"] = f"{timed['latency_median_ms']:.1f} ms"
        figures["latency (p90)"] = f"{timed['latency_p90_ms']:.1f} ms"
        note = f" Latency: one {edge}³ patch on this machine's CPU ({timed.get('threads')} thread(s))."
    else:
        note = " Latency is not timed in the preview (too large for a quick CPU measurement); Inspect measures it."
    widths = spec.widths()
    figures["levels × widths"] = f"{spec.levels} × {'/'.join(map(str, widths))}"
    return Preview(
        summary=f"{source}: a {spec.arch} with {spec.levels} levels (channels {', '.join(map(str, widths))}), "
        f"{spec.blocks} residual block(s) per level, {'half' if spec.stem_stride == 2 else 'full'} resolution inside, "
        f"{'predicting a correction to the dose in water' if spec.residual else 'predicting the dose'}. "
        f"Figures for one {edge}³ training patch (2 channels: CT, dose in water).{note}",
        figures=figures,
        tables=[Table("Architecture", ["stage", "type", "parameters"], _arch_rows(model))],
    )


def data_preview(config, ctx):
    import numpy as np

    from workbench.api import Image, InputError, Preview, Table

    from .compute.cohort import load_case

    cohort, where = _resolve_cohort(config, ctx)
    if cohort is None:
        return Preview(
            summary=f"The demo cohort is not generated yet ({where}). The run generates it first (about 10 minutes "
            "on CPU), or run 'Generate the demo cohort' now; choose builtin:tiny for a quick look.",
            warnings=["demo cohort not generated yet"])
    rows, problems, images = [], [], []
    loaded = 0
    for files in cohort.cases:
        if ctx.cancelled:
            break
        if loaded >= PREVIEW_CASES:
            rows.append([files.id, files.split, "-", "-", "-", "not loaded in the preview"])
            continue
        try:
            case = load_case(files, structures=True)
        except InputError as exc:
            problems.append(f"case {files.id}: {exc}")
            rows.append([files.id, files.split, "-", "-", "-", "unusable: see warnings"])
            continue
        loaded += 1
        ct = np.asarray(case.ct.array)
        spacing = "×".join(f"{s:g}" for s in case.ct.spacing)
        rows.append([files.id, files.split, "×".join(map(str, ct.shape)), spacing,
                     float(case.input_dose.max()), ", ".join(sorted(case.structures or {})) or "-"])
        if not images:
            z = int(np.unravel_index(np.argmax(case.input_dose), case.input_dose.shape)[0])
            images.append(Image(f"{case.id}: CT, axial slice {z}", _axial(ct, z), colormap="gray",
                                levels=(-400.0, 600.0), caption="HU, window −400…600"))
            dose = _axial(case.input_dose, z)
            images.append(Image(f"{case.id}: dose in water (Gy), slice {z}", dose, colormap="turbo",
                                levels=(0.0, float(case.input_dose.max()) or 1.0),
                                caption="the network's second input channel"))
    splits = {s: len(cohort.split(s)) for s in ("train", "val", "test")}
    return Preview(
        summary=f"{len(cohort.cases)} cases in {where}: {splits['train']} train, {splits['val']} validation, "
        f"{splits['test']} test; {loaded} loaded and validated here (DICOM read, frames of reference, doses on the "
        f"CT grid){'; ' + str(len(problems)) + ' unusable' if problems else ''}.",
        figures={"cases": str(len(cohort.cases)), "train": str(splits["train"]), "validation": str(splits["val"]),
                 "test": str(splits["test"]), "unusable": str(len(problems)),
                 "prescription": f"{cohort.meta.get('prescription_gy', '?')} Gy"},
        tables=[Table("Cases", ["case", "split", "CT voxels (z×y×x)", "spacing mm", "max dose in water (Gy)",
                                "structures"], rows)],
        images=images,
        warnings=problems,
    )


def sampling_preview(config, ctx):
    import numpy as np

    from workbench.api import Image, InputError, Preview, Table

    from .compute.cohort import load_case
    from .compute.patches import PatchSampler

    cohort, where = _resolve_cohort(config, ctx)
    if cohort is None:
        return Preview(summary=f"The demo cohort is not generated yet ({where}); the patch preview needs its cases.",
                       warnings=["demo cohort not generated yet"])
    train = cohort.split("train")[:PREVIEW_CASES]
    if not train:
        raise InputError(cohort.manifest, "the cohort has no train cases")
    cases = [load_case(f, structures=False) for f in train]
    budget = _budget(config)
    from .compute.models import teacher_spec

    align = teacher_spec(config.preset, config.base_channels, config.levels, config.residual).multiple
    refs = [np.asarray(c.reference_dose, np.float32) for c in cases]
    sampler = PatchSampler(refs, budget.patch_size, config.sampler, align=align)
    patches = sampler.sample(budget.patches_per_epoch, np.random.default_rng(config.seed))
    first = [p for p in patches if p.case == 0]
    ref0 = refs[0]
    centres = np.array([[c + s // 2 for c, s in zip(p.corner, p.size)] for p in first]) if first else np.zeros((0, 3))
    z = int(np.round(np.median(centres[:, 0]))) if len(centres) else ref0.shape[0] // 2
    rx = float(cohort.meta.get("prescription_gy") or ref0.max() or 1.0)
    # what the choice means: where the centres land, by dose level of the reference dose
    levels = {"high dose (≥ 90% Rx)": 0, "penumbra (20–90% Rx)": 0, "low dose (< 20% Rx)": 0}
    for p in patches:
        c = tuple(min(c0 + s // 2, n - 1) for c0, s, n in zip(p.corner, p.size, refs[p.case].shape))
        d = refs[p.case][c] / rx
        key = "high dose (≥ 90% Rx)" if d >= 0.9 else "penumbra (20–90% Rx)" if d >= 0.2 else "low dose (< 20% Rx)"
        levels[key] += 1
    per_case = np.bincount([p.case for p in patches], minlength=len(cases))
    n = max(len(patches), 1)
    return Preview(
        summary=f"{config.sampler}: one epoch = {len(patches)} patches of {'×'.join(map(str, sampler.sizes[0]))} "
        f"voxels from {len(cases)} train case(s); batches of {budget.batch_size}. Red: the centres of this epoch's "
        f"patches in case {cases[0].id}, projected onto its axial slice {z}.",
        figures={"patches per epoch": str(len(patches)), "patch": f"{budget.patch_size}³ voxels",
                 "batch": str(budget.batch_size), **{k.split(' (')[0]: f"{v / n:.0%}" for k, v in levels.items()}},
        tables=[Table("Patch centres by dose level (reference dose)", ["region", "patches", "share"],
                      [[k, v, f"{v / n:.0%}"] for k, v in levels.items()]),
                Table("Patches per case", ["case", "patches"], [[c.id, int(k)] for c, k in zip(cases, per_case)])],
        images=[Image(f"{cases[0].id}: CT slice {z} with patch centres", _axial(np.asarray(cases[0].ct.array), z),
                      colormap="gray", levels=(-400.0, 600.0), points=centres[:, 1:] if len(centres) else None,
                      caption="every centre of this case, whatever its slice"),
                Image(f"{cases[0].id}: reference dose (Gy), slice {z}", _axial(ref0, z), colormap="turbo",
                      points=centres[:, 1:] if len(centres) else None)],
    )


def student_preview(config, ctx):
    from workbench.api import Preview, Table

    from .compute.models import build_model, student_spec

    teacher, tspec, _source = _teacher(config)
    spec = student_spec(config.preset, config.student, config.student_channels, config.residual)
    student = build_model(spec)
    budget = _budget(config)
    edge_multiple = max(tspec.multiple, spec.multiple)
    example, edge = _patch_input(type("M", (), {"multiple": edge_multiple})(), budget.patch_size)
    s = ctx.profile(student, example, latency=False)
    t = ctx.profile(teacher, example, latency=False)
    fs, ft = _fmt(s), _fmt(t)
    keys = [("parameters", "parameters"), ("storage_bytes", "storage"),
            ("activation_peak_bytes", "activation memory"), ("macs", "MACs")]
    rows = [[title, ft[title], fs[title], f"{t[k] / s[k]:.1f}×" if s[k] else "-"] for k, title in keys]
    ratio = t["parameters"] / max(s["parameters"], 1)
    warnings = [] if ratio >= 10 else [f"the student has 1/{ratio:.1f} of the teacher's parameters (the paper's "
                                       "students are ≤ 1/10)"]
    return Preview(
        summary=f"{config.student}: a {spec.arch} with {spec.levels} level(s), channels "
        f"{', '.join(map(str, spec.widths()))}, {'half' if spec.stem_stride == 2 else 'full'} resolution inside. "
        f"Predicted for one {edge}³ patch before training: {ratio:.0f}× fewer parameters than the teacher.",
        figures={**fs, "parameters vs teacher": f"1/{ratio:.0f}"},
        tables=[Table(f"Predicted footprint, one {edge}³ patch", ["", "teacher", "student", "teacher / student"],
                      rows)],
        warnings=warnings,
    )
