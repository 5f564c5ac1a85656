"""sea.distill: sample -> reduce -> distill -> evaluate, as one resumable run.

1. teacher embeddings of every frame of every clip (shared cache), the student's 1 s input
   windows at 8 kHz at the same timestamps, and each frame's level;
2. a sample of the frames (``sampler``, ``sample_size``), the reduction fitted on it and
   applied to every frame;
3. the student trained by MSE to the reduced embeddings (Adam, LR schedule, early stopping on
   the validation MSE of held-out clips; a checkpoint per epoch, so ``workbench resume`` goes on);
4. fold-wise cross-validation of an MLP on clip-mean embeddings of the teacher, the reduced
   teacher, the student, a published SEA student (optional) and the student architecture
   trained from scratch on labels (optional, trained without each tested fold);
5. storage, activation memory, MACs and latency of teacher and student by the host profiler,
   the student exported (ONNX, TorchScript) and checked against PyTorch, and a results table.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from workbench.api import ConfigError, InputError, Progress, RunContext

from ..configs import DistillConfig
from .embed import demo_dataset

ACC_CRITERIA = "{n}-fold CV (folds from the metadata), MLP on clip-mean embeddings, {l2}"


# -- 1. data --------------------------------------------------------------------------------------
def load_frames(config: DistillConfig, ctx: RunContext, teacher):
    """Yields progress; returns (FrameData, dataset root)."""
    from ..compute.audio_io import load_audio
    from ..compute.clips import FrameData, assign_folds, student_windows, window_centres
    from ..compute.dataset_readers import read_dataset
    from ..compute.embedding_cache import EmbeddingCache
    from ..compute.loudness import frame_spl_db
    from ..compute.students import SAMPLE_RATE

    window_s = config.student_window_s  # the student's audio per embedding (and the loudness window)

    root = Path(config.dataset_dir) if config.dataset_dir else (
        yield from demo_dataset(ctx, config.demo_clips_per_class_per_fold, config.seed))
    dataset = read_dataset(root, config.dataset_format)
    for path, reason in dataset.skipped:
        ctx.warn(f"skipped {path}: {reason}")
    clips = dataset.clips[: config.max_clips] if config.max_clips else dataset.clips
    cache = EmbeddingCache(ctx.cache_dir("sea-embeddings"))
    teach, audio, loud, clip_of, labels, folds, paths = [], [], [], [], [], [], []
    for i, clip in enumerate(clips):
        try:
            emb, times = cache.embed(teacher, clip.path, config.hop_s, config.center, config.batch_size)
            wave = load_audio(clip.path, SAMPLE_RATE)
        except InputError as exc:
            ctx.warn(f"skipped {exc}")
            continue
        teach.append(emb.astype(np.float32))
        audio.append(student_windows(wave, SAMPLE_RATE, times, window_s, config.center))
        loud.append(frame_spl_db(wave, SAMPLE_RATE, window_centres(times, window_s, config.center), window_s))
        clip_of.append(np.full(len(emb), len(labels), dtype=np.int64))
        labels.append(clip.label)
        folds.append(clip.fold)
        paths.append(clip.path)
        yield Progress(i + 1, len(clips), f"{cache.hits} cached, {cache.misses} computed", phase="teacher embeddings")
    if len(labels) < 4:
        raise InputError(root, f"only {len(labels)} usable clip(s); a distillation needs at least 4")
    classes = sorted(set(labels))
    y = np.array([classes.index(c) for c in labels], dtype=np.int64)
    f = np.array(folds, dtype=np.int64)
    if (f <= 0).any():
        f = assign_folds(y, 10, config.seed)
        ctx.warn(f"{root}: the {dataset.layout} layout defines no folds; dealt the clips into 10 seeded folds")
    data = FrameData(np.concatenate(teach), np.concatenate(audio), np.concatenate(loud), np.concatenate(clip_of),
                     y, f, classes, paths)
    ctx.log(f"{data.n_clips} clips, {len(data.clip)} frames, {len(classes)} classes "
            f"({cache.hits} clips from the cache, {cache.misses} embedded)")
    return data, root


# -- 2. sample and reduce ---------------------------------------------------------------------------
def sample_and_reduce(config: DistillConfig, ctx: RunContext, data):
    from ..compute.reduction import make_reduction
    from ..compute.sampling import coverage, sample_indices

    idx = sample_indices(config.sampler, data.teacher, config.sample_size, seed=config.seed,
                         loudness_db=data.loudness_db, labels=data.frame_labels, groups=data.clip)
    cov = coverage(data.teacher, idx, seed=config.seed, labels=data.frame_labels)
    reduction = make_reduction(config.reduction, config.reduced_dim, config.seed)
    reduction.fit(data.teacher[idx])
    reduced = reduction.transform(data.teacher).astype(np.float32)
    ctx.log(f"sampled {len(idx)} of {len(data.teacher)} frames ({config.sampler}); "
            f"{config.reduction} {data.teacher.shape[1]} -> {reduced.shape[1]} dims")
    return idx, cov, reduction, reduced


# -- 3. training -----------------------------------------------------------------------------------
def _optimizer(model, lr: float):
    import torch

    return torch.optim.Adam(model.parameters(), lr=lr)


def _scheduler(config) -> dict | str:
    if config.lr_schedule == "plateau":
        return {"kind": "plateau", "patience": max(1, config.patience // 2), "factor": 0.1}
    if config.lr_schedule == "step":
        return {"kind": "step", "step_size": max(1, config.epochs // 3), "gamma": 0.1}
    return config.lr_schedule


def frame_spectrograms(data):
    """The student front end's output for every frame, computed on first use and kept on ``data``."""
    if data.spectrograms is None:
        from ..compute.students import spectrograms

        data.spectrograms = spectrograms(data.audio)
    return data.spectrograms


def student_spec(config, out_dim: int):
    from ..compute.students import StudentSpec

    return StudentSpec(out_dim=out_dim, width=config.student_width, blocks=config.student_blocks,
                       stem_stride=config.student_stem_stride, window_s=config.student_window_s,
                       widths=tuple(config.student_block_widths))


def train_student(config: DistillConfig, ctx: RunContext, data, targets: np.ndarray, train_clips, val_clips):
    import torch
    import torch.nn.functional as F

    from workbench.distill import EarlyStopping, TensorBatches, Trainer

    from ..compute.students import SeaStudent

    spec = student_spec(config, targets.shape[1])
    model = SeaStudent(spec)
    train = np.isin(data.clip, train_clips)
    x, y = frame_spectrograms(data), torch.from_numpy(targets)
    xt, yt, xv, yv = x[train], y[train], x[~train], y[~train]
    ctx.log(f"student {spec}: {sum(p.numel() for p in model.parameters()):,d} parameters; "
            f"{len(xt)} training and {len(xv)} validation frames")

    def validate(m):
        total, n = 0.0, 0
        for b in range(0, len(xv), 256):
            out = m.from_spectrogram(xv[b:b + 256])
            total += float(F.mse_loss(out, yv[b:b + 256], reduction="sum"))
            n += out.numel()
        return {"loss": total / max(n, 1)}

    trainer = Trainer(model, _optimizer(model, config.lr), ctx, epochs=config.epochs,
                      train_batches=lambda epoch: TensorBatches((xt, yt), config.train_batch_size, config.seed, epoch),
                      loss_fn=lambda m, batch: F.mse_loss(m.from_spectrogram(batch[0]), batch[1]),
                      validate=validate if len(xv) else None, scheduler=_scheduler(config) if len(xv) or
                      config.lr_schedule != "plateau" else "none",
                      early_stopping=EarlyStopping("val_loss", "min", patience=config.patience) if len(xv) else None,
                      device=ctx.device, phase="distill")
    summary = yield from trainer.fit()
    return model.cpu().eval(), spec, summary, trainer.history


def train_scratch(config: DistillConfig, ctx: RunContext, data, spec, held_out_fold: int):
    """The student architecture trained on frame labels (cross-entropy) without ``held_out_fold``;
    returns its body (the embedding network)."""
    import torch
    import torch.nn.functional as F

    from workbench.distill import TensorBatches, Trainer

    from ..compute.students import ScratchClassifier

    torch.manual_seed(config.seed * 7919 + held_out_fold)
    model = ScratchClassifier(spec, len(data.classes))
    keep = data.folds[data.clip] != held_out_fold
    x, y = frame_spectrograms(data)[torch.from_numpy(keep)], torch.from_numpy(data.frame_labels[keep])
    trainer = Trainer(model, _optimizer(model, config.lr), ctx, epochs=config.scratch_epochs,
                      train_batches=lambda epoch: TensorBatches((x, y), config.train_batch_size,
                                                                config.seed + held_out_fold, epoch),
                      loss_fn=lambda m, batch: F.cross_entropy(m.from_spectrogram(batch[0]), batch[1]),
                      checkpoint=False, resume=False, device=ctx.device, phase=f"scratch (without fold {held_out_fold})")
    _metrics_off(trainer)
    yield from trainer.fit()
    return model.body.cpu().eval()


def _metrics_off(trainer) -> None:
    """The baseline's per-fold losses would mix with the student's curves: keep them out of the run's metrics."""
    class _Quiet:
        def __init__(self, ctx):
            self._ctx = ctx

        def metric(self, *a, **k):
            pass

        def __getattr__(self, name):
            return getattr(self._ctx, name)

    trainer.ctx = _Quiet(trainer.ctx)


def embed_frames(model, data, batch: int = 256) -> np.ndarray:
    """A student's (or from-scratch body's) output for every frame, from the shared spectrograms."""
    import torch

    x = frame_spectrograms(data)
    model.eval()
    out = []
    with torch.no_grad():
        for b in range(0, len(x), batch):
            out.append(model.from_spectrogram(x[b:b + batch]).numpy())
    return np.concatenate(out).astype(np.float32)


# -- 4. downstream ---------------------------------------------------------------------------------
def evaluate(ctx: RunContext, config, subject: str, features, data, folds: list[int]) -> dict:
    from ..compute.downstream import cross_validate

    alphas = tuple(config.mlp_alphas)
    result = cross_validate(features, data.labels, data.folds, test_folds=folds, hidden=config.mlp_hidden,
                            max_iter=config.mlp_epochs, seed=config.seed, alphas=alphas)
    criteria = ACC_CRITERIA.format(n=len(folds), l2="L2 chosen on a validation fold" if len(alphas) > 1
                                   else f"L2 {alphas[0]:g}")
    ctx.evaluation(subject, "accuracy", result.mean, criteria)
    ctx.evaluation(subject, "accuracy_sd", result.sd, criteria)
    for fold, acc in result.per_fold.items():
        ctx.evaluation(subject, "accuracy", acc, criteria, case=f"fold{fold}")
    return result.to_dict()


# -- 5. footprint, artifacts -----------------------------------------------------------------------
PROFILE_KEYS = ("parameters", "storage_bytes", "activation_peak_bytes", "macs", "latency_median_ms")


def profile_models(config, ctx: RunContext, models: dict[str, tuple[Any, Any]]) -> dict[str, dict]:
    out = {}
    for name, (model, example) in models.items():
        prof = ctx.profile(model, example, device="cpu", threads=1, repeats=20)
        out[name] = prof
        for key in PROFILE_KEYS:
            ctx.evaluation(name, key, float(prof[key]), "host profiler, cpu, 1 thread, batch 1")
    return out


def save_student(ctx: RunContext, model, spec, reduction, config, teacher) -> Path:
    from ..compute.reduction import save_reduction
    from ..compute.students import STUDENT_FORMAT, save_student as save_weights

    weights = ctx.run_dir / "student.safetensors"
    save_weights(model, weights, {})
    red_path = ctx.run_dir / "reduction.safetensors"
    save_reduction(red_path, reduction)
    _, red_meta = reduction.to_state()
    meta = {"format": STUDENT_FORMAT, "student": spec.to_dict(), "teacher": teacher.id, "teacher_spec": config.teacher,
            "teacher_dim": teacher.embedding_dim, "reduction": red_meta, "reduction_file": red_path.name,
            "hop_s": config.hop_s, "center": config.center}
    (ctx.run_dir / "student.json").write_text(json.dumps(meta, indent=2))
    ctx.artifact("sea-student", weights, meta="student.json", out_dim=spec.out_dim)
    ctx.artifact("sea-student-meta", ctx.run_dir / "student.json")
    ctx.artifact("sea-reduction", red_path, reduction=reduction.kind, dim=int(reduction.output_dim))
    return weights


def projection(config, data, reduced: np.ndarray, student_out: np.ndarray) -> dict[str, np.ndarray]:
    """2-D PCA of the reduced teacher embeddings; the student's outputs in the same plane."""
    rng = np.random.default_rng(config.seed)
    pick = np.sort(rng.choice(len(reduced), min(config.projection_points, len(reduced)), replace=False))
    z = reduced[pick].astype(np.float64)
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    basis = vt[:2].T if vt.shape[0] >= 2 else np.eye(z.shape[1], 2)
    return {"teacher_xy": ((z - mean) @ basis).astype(np.float32),
            "student_xy": ((student_out[pick] - mean) @ basis).astype(np.float32),
            "labels": data.frame_labels[pick], "classes": np.array(data.classes)}


def sampling_projection(config, data, idx: np.ndarray) -> dict[str, np.ndarray]:
    """2-D PCA of the teacher embeddings with the sampled frames marked (the coverage view)."""
    rng = np.random.default_rng(config.seed + 1)
    n = len(data.teacher)
    pick = np.sort(rng.choice(n, min(config.projection_points, n), replace=False))
    pick = np.union1d(pick, idx[: config.projection_points])
    x = data.teacher[pick].astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return {"xy": ((x - mean) @ vt[:2].T).astype(np.float32), "sampled": np.isin(pick, idx),
            "labels": data.frame_labels[pick], "classes": np.array(data.classes)}


def export_student(config, ctx: RunContext, model, example) -> dict[str, dict]:
    out: dict[str, dict] = {}
    folder = ctx.run_dir / "export"
    folder.mkdir(exist_ok=True)
    jobs = [("onnx", folder / "student.onnx", model)] if config.export_onnx else []
    if config.export_torchscript:
        jobs.append(("torchscript", folder / "student.pt", model))
    if config.quantize_int8:
        q = quantized(model)
        if q is None:
            ctx.warn("int8 dynamic quantization skipped: torch quantizes only Linear/recurrent layers dynamically, "
                     "and this student has none (its convolutions would need static quantization)")
        else:
            jobs.append(("torchscript", folder / "student-int8.pt", q))
    for fmt, path, m in jobs:
        name = path.stem
        try:
            result = ctx.export(m, example, path, fmt)
        except Exception as exc:  # noqa: BLE001 - an export failure is reported, the run's results stand
            ctx.warn(f"{name} export to {fmt} failed: {exc}")
            continue
        ctx.artifact(f"export-{fmt}", path, model=name, max_abs_diff=result.get("max_abs_diff"))
        out[name] = {k: result.get(k) for k in ("format", "bytes", "max_abs_diff", "exporter")}
    return out


def quantized(model):
    """int8 dynamic quantization (torch's ``quantize_dynamic``: Linear layers); None when it changes nothing."""
    import copy

    import torch

    if not any(isinstance(m, torch.nn.Linear) for m in model.modules()):
        return None
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8)


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def results_table(config, teacher_name: str, accuracy: dict[str, dict], profiles: dict[str, dict],
                  subjects: dict[str, str]) -> str:
    lines = [f"SEA distillation  sampler={config.sampler}  reduction={config.reduction}  "
             f"student={subjects.get('student', '')}  teacher={teacher_name}", ""]
    lines.append(f"{'downstream accuracy':<34}{'mean ± sd':>16}   vs teacher")
    t_acc = accuracy["teacher"]["mean"]
    for key, title in subjects.items():
        if key in accuracy:
            a = accuracy[key]
            diff = "" if key == "teacher" else f"{(a['mean'] - t_acc) * 100:+.1f} pp"
            lines.append(f"  {title:<32}{a['mean'] * 100:>7.1f} ± {a['sd'] * 100:4.1f} %   {diff}")
    if profiles:
        lines += ["", f"{'footprint (host profiler)':<28}{'teacher':>14}{'student':>14}{'teacher/student':>18}"]
        t, s = profiles["teacher"], profiles["student"]
        rows = [("parameters", "parameters", lambda v: f"{v:,.0f}"), ("storage", "storage_bytes", _mb),
                ("activations (peak)", "activation_peak_bytes", _mb), ("MACs / window", "macs", lambda v: f"{v / 1e6:.1f} M"),
                ("latency (median)", "latency_median_ms", lambda v: f"{v:.2f} ms")]
        for title, key, fmt in rows:
            ratio = t[key] / s[key] if s[key] else float("nan")
            lines.append(f"  {title:<26}{fmt(t[key]):>14}{fmt(s[key]):>14}{ratio:>16.1f}x")
        lines.append(f"  (CPU, 1 thread, batch 1: teacher window {t['input_shapes'][0]}, student {s['input_shapes'][0]})")
    return "\n".join(lines)


# -- the pipeline ------------------------------------------------------------------------------------
def run(config: DistillConfig, ctx: RunContext):
    result = yield from distill(config, ctx)
    return result


def distill(config: DistillConfig, ctx: RunContext):
    import torch

    from ..compute.clips import mean_pool, split_clips
    from ..compute.downstream import folds_to_test
    from ..compute.students import example_input
    from ..compute.teachers import load_teacher

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    teacher = load_teacher(config.teacher)
    ctx.log(f"teacher {teacher.id}: {teacher.embedding_dim}-d, {teacher.sample_rate} Hz, {teacher.window_s} s windows")
    if config.reduction != "none" and config.reduced_dim > teacher.embedding_dim:
        raise ConfigError(f"reduced_dim {config.reduced_dim} exceeds the teacher's {teacher.embedding_dim} dims",
                          key="reduced_dim")
    data, root = yield from load_frames(config, ctx, teacher)
    folds = folds_to_test(data.folds, config.eval_folds)

    yield Progress(0, 1, f"{config.sampler} sample of {config.sample_size}", phase="sample + reduce")
    idx, cov, reduction, reduced = sample_and_reduce(config, ctx, data)
    yield Progress(1, 1, "done", phase="sample + reduce")

    train_clips, val_clips = split_clips(data.n_clips, config.val_fraction, config.seed)
    student, spec, train_summary, history = yield from train_student(config, ctx, data, reduced, train_clips, val_clips)

    yield Progress(0, 1, "student embeddings", phase="evaluate")
    student_frames = embed_frames(student, data)
    mse = float(np.mean((student_frames - reduced) ** 2))
    ctx.evaluation("student", "mse_to_reduced_teacher", mse, "all frames")
    pooled = {"teacher": mean_pool(data.teacher, data.clip, data.n_clips),
              "reduced_teacher": mean_pool(reduced, data.clip, data.n_clips),
              "student": mean_pool(student_frames, data.clip, data.n_clips)}
    subjects = {"teacher": f"teacher ({config.teacher}, {teacher.embedding_dim}-d)",
                "reduced_teacher": f"reduced teacher ({config.reduction}, {reduced.shape[1]}-d)",
                "student": f"student ({spec.label()})"}
    models_to_profile: dict[str, tuple[Any, Any]] = {}
    if config.reference_student:
        ref = load_teacher(f"keras-h5:{config.reference_student}")
        from ..compute.embedding_cache import EmbeddingCache

        cache = EmbeddingCache(ctx.cache_dir("sea-embeddings"))
        rows = []
        for i, path in enumerate(data.paths):
            emb, _ = cache.embed(ref, path, config.hop_s, config.center, config.batch_size)
            rows.append(emb.mean(axis=0))
            yield Progress(i + 1, len(data.paths), "published SEA student", phase="reference embeddings")
        pooled["reference"] = np.stack(rows).astype(np.float32)
        subjects["reference"] = f"published SEA student ({Path(config.reference_student).name}, {ref.embedding_dim}-d)"
        models_to_profile["reference"] = (ref.model, torch.zeros(1, ref.window_samples))

    accuracy: dict[str, dict] = {}
    for n, (key, features) in enumerate(pooled.items()):
        yield Progress(n, len(pooled) + config.scratch_baseline, f"downstream MLP: {key}", phase="evaluate")
        accuracy[key] = evaluate(ctx, config, key, features, data, folds)

    if config.scratch_baseline:
        scratch_cache: dict[int, np.ndarray] = {}
        for fold in folds:
            body = yield from train_scratch(config, ctx, data, spec, fold)
            scratch_cache[fold] = mean_pool(embed_frames(body, data), data.clip, data.n_clips)
        accuracy["scratch"] = evaluate(ctx, config, "scratch", lambda f: scratch_cache[f], data, folds)
        subjects["scratch"] = f"same student from scratch on labels ({config.scratch_epochs} epochs)"

    profiles: dict[str, dict] = {}
    if config.profile:
        yield Progress(0, 1, "host profiler", phase="footprint")
        example = torch.zeros(1, teacher.window_samples)
        profiles = profile_models(config, ctx, {"teacher": (teacher.model, example),
                                                "student": (student, example_input(spec)), **models_to_profile})

    # artifacts
    save_student(ctx, student, spec, reduction, config, teacher)
    np.savez(ctx.run_dir / "projection.npz", **projection(config, data, reduced, student_frames))
    ctx.artifact("sea-projection", ctx.run_dir / "projection.npz")
    sampling = {"sampler": config.sampler, "sample_size": int(len(idx)), "frames": int(len(data.teacher)),
                "coverage": cov}
    (ctx.run_dir / "sampling.json").write_text(json.dumps(sampling, indent=2))
    np.savez(ctx.run_dir / "sampling.npz", indices=idx, **sampling_projection(config, data, idx))
    ctx.artifact("sea-sampling", ctx.run_dir / "sampling.json", projection="sampling.npz")
    ctx.artifact("sea-sampling-projection", ctx.run_dir / "sampling.npz")
    (ctx.run_dir / "history.json").write_text(json.dumps({"history": history, "summary": train_summary}, indent=2,
                                                         default=float))
    ctx.artifact("sea-training", ctx.run_dir / "history.json")
    exports = export_student(config, ctx, student, example_input(spec)) if (
        config.export_onnx or config.export_torchscript or config.quantize_int8) else {}

    table = results_table(config, config.teacher, accuracy, profiles, subjects)
    results = {"config": {"sampler": config.sampler, "reduction": config.reduction, "reduced_dim": int(reduced.shape[1]),
                          "student_width": spec.width, "student_blocks": spec.blocks,
                          "student_stem_stride": spec.stem_stride, "student_window_s": spec.window_s,
                          "student_block_widths": list(spec.widths), "teacher": config.teacher},
               "dataset": str(root), "clips": data.n_clips, "frames": int(len(data.clip)), "folds": folds,
               "accuracy": accuracy, "subjects": subjects, "mse_to_reduced_teacher": mse,
               "profiles": {k: {m: v[m] for m in (*PROFILE_KEYS, "latency_p90_ms", "input_shapes", "threads",
                                                  "device_name")} for k, v in profiles.items()},
               "ratios": _ratios(profiles), "exports": exports, "training": train_summary, "sampling": sampling,
               "table": table}
    (ctx.run_dir / "results.json").write_text(json.dumps(results, indent=2, default=float))
    ctx.artifact("sea-results", ctx.run_dir / "results.json")
    ctx.log(table)
    return {"table": table, "accuracy_student": accuracy["student"]["mean"],
            "accuracy_teacher": accuracy["teacher"]["mean"], "ratios": results["ratios"]}


def _ratios(profiles: dict[str, dict]) -> dict[str, float]:
    if "teacher" not in profiles or "student" not in profiles:
        return {}
    t, s = profiles["teacher"], profiles["student"]
    return {k: float(t[k]) / float(s[k]) for k in PROFILE_KEYS if s.get(k)}


# -- profile target ----------------------------------------------------------------------------------
def build_model(run_dir: Path, config: dict, name: str):
    """The run's student (from its safetensors + JSON) or its teacher, with one input window."""
    import torch

    from ..compute.students import example_input, load_student
    from ..compute.teachers import load_teacher

    if name == "teacher":
        teacher = load_teacher(DistillConfig.model_validate(config).teacher)
        return teacher.model, torch.zeros(1, teacher.window_samples)
    meta_path = Path(run_dir) / "student.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(meta_path, f"cannot read the student's metadata: {exc}") from None
    model = load_student(Path(run_dir) / "student.safetensors", meta["student"])
    return model, example_input(model.spec)
