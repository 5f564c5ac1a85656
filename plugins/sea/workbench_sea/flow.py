"""The guided flow of sea.distill and its step previews.

Declared for the host's guided flow (teacher → data → sampling → student → distill →
inspect). The declaration imports only the API; each preview imports the plugin's compute
modules when it runs (off the GUI thread) and returns plain data. Previews reuse the
pipeline's own code paths — dataset readers, the shared embedding cache, the samplers, the
student builder — so what is previewed is what the run will do, and teacher embeddings a
preview computes are cache hits for the run.
"""
from __future__ import annotations

from workbench.api import FlowSpec, StepSpec

_F = "workbench_sea.flow"
#: the sampling preview embeds at most this many clips (the run uses all of them)
PREVIEW_CLIPS = 40
SPECTROGRAMS = 3

DISTILL_FLOW = FlowSpec(
    "distill",
    title="Distill a SEA student, step by step",
    description="Approximate a large audio embedding teacher with a tiny edge student on your sounds.",
    steps=(
        StepSpec("teacher", ("teacher", "hop_s", "center", "batch_size"), f"{_F}:teacher_preview",
                 description="The large embedding network whose outputs the student learns to reproduce: a "
                 "known teacher (aisfx, openl3:…) or a file (keras-h5:<path>, torchscript:<path>). Its cost is "
                 "measured here, on this machine."),
        StepSpec("data", ("dataset_dir", "dataset_format", "max_clips", "demo_clips_per_class_per_fold"),
                 f"{_F}:data_preview",
                 description="Your domain's sounds: UrbanSound8K, ESC-50, SONYC-UST or one folder per class. Empty "
                 "folder: a generated urban-sound demo set. Every file that cannot be used is listed with why."),
        StepSpec("sampling", ("sampler", "sample_size", "reduction", "reduced_dim"), f"{_F}:sampling_preview",
                 description="Which teacher embeddings fit the dimensionality reduction, and how far it reduces "
                 "them (= the student's output size). The preview samples a subset of clips and shows the "
                 "sample among all frames."),
        StepSpec("student", ("student_width", "student_blocks", "student_stem_stride", "student_window_s",
                             "student_block_widths"), f"{_F}:student_preview",
                 description="The SEA student family (L3 audio net with per-block reduction factors): its width, depth "
                 "and how much audio it hears. Size, memory and compute are predicted before training, next to "
                 "the teacher's."),
        StepSpec("distill", ("epochs", "lr", "lr_schedule", "train_batch_size", "patience", "val_fraction", "device"),
                 description="Train the student by MSE to the reduced teacher embeddings, then evaluate both "
                 "downstream (fold-wise MLP) and measure them. Evaluation and export options are under More "
                 "settings."),
        StepSpec("inspect", description="Downstream accuracy and cost of teacher and student, the embeddings "
                 "side by side, sampling coverage and training curves; export the student."),
    ),
)


# -- previews (run by the host off the GUI thread) -------------------------------------------------
class _RunLike:
    """Lets a preview drive the pipeline's own generators (they need cache_dir/log/warn)."""

    def __init__(self, ctx):
        self.ctx, self.home = ctx, ctx.home
        self.warnings: list[str] = []

    def cache_dir(self, name: str):
        return self.ctx.cache_dir(name)

    def log(self, message: str, level: str = "info") -> None:
        if level == "warning":
            self.warnings.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _drive(gen, ctx):
    """Run a pipeline generator to its return value, stopping when the preview is superseded."""
    from workbench.api import Cancelled

    try:
        while True:
            next(gen)
            if ctx.cancelled:
                gen.close()
                raise Cancelled("preview superseded")
    except StopIteration as stop:
        return stop.value


def _dataset_root(config, ctx):
    from pathlib import Path

    from .pipelines.embed import demo_dataset

    if config.dataset_dir:
        return Path(config.dataset_dir)
    return _drive(demo_dataset(_RunLike(ctx), config.demo_clips_per_class_per_fold, config.seed), ctx)


def _mb(n: float) -> str:
    from workbench.api import human_bytes

    return human_bytes(n)


def _architecture(model, example) -> list[list]:
    """Leaf layers in call order with their output shapes and parameters (one forward pass)."""
    import torch

    rows, hooks = [], []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue

        def hook(mod, _inp, out, name=name):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else "…"
            params = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append([name or type(mod).__name__, type(mod).__name__, str(shape).replace(" ", ""), params])

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    keep = [r for r in rows if r[3] or any(k in r[1] for k in ("Pool", "Flatten", "Spectrogram", "Mel"))]
    return keep[:60]


def teacher_preview(config, ctx):
    import torch

    from workbench.api import Preview, Table, human_count

    from .compute.teachers import load_teacher

    teacher = load_teacher(config.teacher)
    example = torch.zeros(1, teacher.window_samples)
    prof = ctx.profile(teacher.model, example)
    arch = _architecture(teacher.model, example)
    per_clip = max(1, round(4.0 / config.hop_s))
    return Preview(
        summary=f"{teacher.id}: {teacher.embedding_dim}-dimensional embeddings of {teacher.window_s:.3g} s windows of "
        f"{teacher.sample_rate:,d} Hz audio, one every {config.hop_s:g} s (≈{per_clip} per 4 s clip). "
        f"Latency is one window on this machine's CPU with {prof.get('threads')} thread(s).",
        figures={"parameters": f"{prof['parameters']:,d}", "storage": _mb(prof["storage_bytes"]),
                 "activation memory": _mb(prof["activation_peak_bytes"]), "MACs": human_count(prof["macs"]),
                 "latency (median)": f"{prof['latency_median_ms']:.1f} ms",
                 "latency (p90)": f"{prof['latency_p90_ms']:.1f} ms",
                 "embedding": f"{teacher.embedding_dim}-d", "input": f"{teacher.window_s:.3g} s @ {teacher.sample_rate:,d} Hz"},
        tables=[Table("Architecture", ["layer", "type", "output", "parameters"], arch,
                      note=f"{len(arch)} layers with weights, pooling or spectrogram front end")],
    )


def _log_mel(path, seconds: float = 4.0):
    import numpy as np
    import torch

    from .compute.audio_io import load_audio
    from .compute.students import HOP, SAMPLE_RATE, LogMel

    wave = load_audio(path, SAMPLE_RATE)[: int(seconds * SAMPLE_RATE)]
    with torch.no_grad():
        spec = LogMel()(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None])[0, 0].numpy()
    return spec, len(wave) / SAMPLE_RATE, HOP / SAMPLE_RATE


#: up to this many clips the data preview decodes every file (as the run will); above, headers only
FULL_CHECK_CLIPS = 400


def _check_clips(clips, ctx) -> tuple[list, list[tuple[str, str]]]:
    """(usable clips, [(path, reason)]): decoded and validated like the run does (load_audio),
    or, for large datasets, the header only (soundfile.info) so the preview stays quick."""
    import soundfile as sf

    from workbench.api import InputError

    from .compute.audio_io import load_audio
    from .compute.students import SAMPLE_RATE

    full = len(clips) <= FULL_CHECK_CLIPS
    good, bad = [], []
    for clip in clips:
        if ctx.cancelled:
            break
        try:
            if full:
                load_audio(clip.path, SAMPLE_RATE)
            else:
                sf.info(str(clip.path))
        except InputError as exc:
            bad.append((str(clip.path), exc.problem))
            continue
        except Exception as exc:  # noqa: BLE001 - soundfile's header errors
            bad.append((str(clip.path), f"cannot read the audio header: {exc}"))
            continue
        good.append(clip)
    return good, bad


def data_preview(config, ctx):
    from collections import Counter

    from workbench.api import Image, Preview, Table

    from .compute.dataset_readers import read_dataset

    root = _dataset_root(config, ctx)
    dataset = read_dataset(root, config.dataset_format)
    listed = dataset.clips[: config.max_clips] if config.max_clips else dataset.clips
    clips, unusable = _check_clips(listed, ctx)
    folds = sorted({c.fold for c in clips})
    counts = Counter((c.label, c.fold) for c in clips)
    classes = sorted({c.label for c in clips})
    rows = [[label] + [counts.get((label, f), 0) for f in folds] + [sum(counts.get((label, f), 0) for f in folds)]
            for label in classes]
    rows.append(["all"] + [sum(counts.get((label, f), 0) for label in classes) for f in folds] + [len(clips)])
    fold_names = [f"fold {f}" if f > 0 else "no fold" for f in folds]
    images, seen = [], set()
    for clip in clips:
        if len(images) >= SPECTROGRAMS or ctx.cancelled:
            break
        if clip.label in seen:
            continue
        seen.add(clip.label)
        try:
            spec, seconds, _hop = _log_mel(clip.path)
        except Exception as exc:  # noqa: BLE001 - the clip is also reported by the run; show the rest
            images.append(Image(f"{clip.label}: {clip.path.name}", [[0.0]], caption=f"cannot read: {exc}"))
            continue
        images.append(Image(f"{clip.label} · {clip.path.name}", spec, colormap="magma", origin="lower",
                            extent=(0.0, seconds, 0.0, float(spec.shape[0])), x_label="seconds",
                            y_label="mel band", levels=(float(spec.max()) - 80.0, float(spec.max()))))
    skipped = [f"{path}: {reason}" for path, reason in [*dataset.skipped, *unusable]]
    checked = "decoded and checked" if len(listed) <= FULL_CHECK_CLIPS else "headers checked"
    source = str(root) if config.dataset_dir else f"generated demo set at {root}"
    limit = f" (max_clips: the first {len(listed)} of {len(dataset.clips)})" if config.max_clips else ""
    return Preview(
        summary=f"{dataset.layout} layout in {source}: {len(clips):,d} usable clips{limit} in {len(classes)} classes "
        f"and {len(folds)} folds ({checked}); {len(skipped)} file(s) skipped. Examples below are log-mel spectrograms as the "
        "student hears them (8 kHz, 64 mel bands).",
        figures={"layout": dataset.layout, "classes": str(len(classes)), "clips": f"{len(clips):,d}",
                 "folds": str(len(folds)), "skipped": str(len(skipped))},
        tables=[Table("Clips per class and fold", ["class"] + fold_names + ["total"], rows)],
        images=images,
        warnings=skipped,
    )


def sampling_preview(config, ctx):
    import numpy as np

    from workbench.api import Preview, Scatter, Table

    from .compute.dataset_readers import read_dataset
    from .compute.sampling import coverage, sample_indices
    from .compute.teachers import load_teacher
    from .pipelines.distill import load_frames

    root = _dataset_root(config, ctx)
    n_all = len(read_dataset(root, config.dataset_format).clips)
    if config.max_clips:
        n_all = min(n_all, config.max_clips)
    n_sub = min(n_all, PREVIEW_CLIPS)
    sub = config.model_copy(update={"max_clips": n_sub, "dataset_dir": str(root)})
    teacher = load_teacher(config.teacher)
    run_like = _RunLike(ctx)
    data, _root = _drive(load_frames(sub, run_like, teacher), ctx)
    frames = len(data.teacher)
    # the run samples sample_size of all frames; the preview the same share of its subset
    k = config.sample_size if n_sub >= n_all else max(2, round(config.sample_size * n_sub / max(n_all, 1)))
    k = min(k, frames)
    idx = sample_indices(config.sampler, data.teacher, k, seed=config.seed, loudness_db=data.loudness_db,
                         labels=data.frame_labels, groups=data.clip)
    cov = coverage(data.teacher, idx, seed=config.seed, labels=data.frame_labels)
    x = data.teacher.astype(np.float64)
    mean = x.mean(axis=0)
    _u, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    xy = (x - mean) @ vt[:2].T
    sampled = np.zeros(frames, dtype=bool)
    sampled[idx] = True
    labels = np.array(data.classes)[data.frame_labels]
    figures = {"frames (preview)": f"{frames:,d}", "sampled": f"{len(idx):,d}",
               "cell coverage": f"{cov['cell_coverage']:.0%}", "mean distance to sample": f"{cov['mean_nn_distance']:.3g}"}
    if config.reduction != "none" and config.sample_size < config.reduced_dim:
        run_like.warnings.insert(0, f"the run will stop: {config.reduction} to {config.reduced_dim} dimensions needs at "
                                 f"least {config.reduced_dim} sampled embeddings (sample size {config.sample_size})")
    if config.reduction == "pca":
        xs = data.teacher[idx].astype(np.float64)
        sv = np.linalg.svd(xs - xs.mean(axis=0), compute_uv=False) ** 2
        kept = sv[: config.reduced_dim].sum() / sv.sum() if sv.sum() > 0 else 1.0
        figures["variance kept by PCA"] = f"{kept:.1%} in {config.reduced_dim} dims"
        if len(idx) < config.reduced_dim:
            run_like.warnings.append(f"only {len(idx)} sampled frames for a {config.reduced_dim}-d PCA in this "
                                     "preview: the fitted reduction is rank-deficient here")
    per_class = _class_rows(data, idx)
    return Preview(
        summary=f"{config.sampler} sampling of {len(idx):,d} of {frames:,d} teacher frames from {n_sub} of {n_all} listed "
        f"clips (the run samples {config.sample_size:,d} frames of all clips); {config.reduction} reduces "
        f"{data.teacher.shape[1]} → {config.reduced_dim if config.reduction != 'none' else data.teacher.shape[1]} "
        "dimensions. Circled: the sampled frames, over a 2-D PCA of all preview frames coloured by class.",
        figures=figures,
        tables=[Table("Sampled frames per class", ["class", "frames", "sampled", "share"], per_class)],
        scatters=[Scatter("teacher embeddings (2-D PCA), sampled circled", xy[:, 0], xy[:, 1], highlight=sampled,
                          labels=labels, x_label="PC 1", y_label="PC 2",
                          caption=f"cells covered {cov['cells_covered']} of {cov['cells']} (k-means on all frames)")],
        warnings=run_like.warnings,
    )


def _class_rows(data, idx) -> list[list]:
    import numpy as np

    labels = data.frame_labels
    out = []
    for i, name in enumerate(data.classes):
        total = int((labels == i).sum())
        got = int((labels[idx] == i).sum())
        out.append([name, total, got, f"{got / total:.0%}" if total else "-"])
    return out


def student_preview(config, ctx):
    from workbench.api import Preview, Table, human_count

    from .compute.students import block_widths, build_student, example_input
    from .compute.teachers import load_teacher
    from .pipelines.distill import student_spec
    import torch

    teacher = load_teacher(config.teacher)
    out_dim = teacher.embedding_dim if config.reduction == "none" else config.reduced_dim
    spec = student_spec(config, out_dim)
    student = build_student(spec)
    s = ctx.profile(student, example_input(spec), latency=False)
    t = ctx.profile(teacher.model, torch.zeros(1, teacher.window_samples), latency=False)
    keys = [("parameters", "parameters", lambda v: f"{v:,d}"), ("storage_bytes", "storage", _mb),
            ("activation_peak_bytes", "activation memory", _mb), ("macs", "MACs", human_count)]
    rows = [[title, fmt(t[k]), fmt(s[k]), f"{t[k] / s[k]:.1f}×" if s[k] else "-"] for k, title, fmt in keys]
    widths = [[f"block {i + 1}", c1, c2] for i, (c1, c2) in enumerate(block_widths(spec))]
    return Preview(
        summary=f"A SEA student with {spec.blocks} conv block(s) at "
        f"{'widths ' + '/'.join(map(str, spec.widths)) if spec.widths else f'width ×{spec.width:g}'}"
        f"{f' (first conv stride {spec.stem_stride})' if spec.stem_stride > 1 else ''}, ending in {out_dim} "
        f"channels (the {'teacher' if config.reduction == 'none' else 'reduced'} embedding size), on {spec.window_s:g} s "
        f"of 8 kHz audio. Predicted before training: {s['parameters']:,d} parameters against the teacher's "
        f"{t['parameters']:,d}.",
        figures={"parameters": f"{s['parameters']:,d}", "storage": _mb(s["storage_bytes"]),
                 "activation memory": _mb(s["activation_peak_bytes"]), "MACs": human_count(s["macs"]),
                 "storage vs teacher": f"{t['storage_bytes'] / max(s['storage_bytes'], 1):.0f}× smaller"},
        tables=[Table("Predicted footprint, one input window", ["", "teacher", "student", "teacher / student"], rows),
                Table("Student conv widths", ["block", "conv 1", "conv 2"], widths)],
    )
