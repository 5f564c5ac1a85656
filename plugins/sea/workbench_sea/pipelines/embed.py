"""sea.embed: teacher embeddings of every clip of a domain dataset, into the shared cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.api import InputError, Progress, RunContext

from ..configs import EmbedConfig


def demo_dataset(ctx: RunContext, clips_per_class_per_fold: int, seed: int):
    """The generated demo dataset under the home, made once per (size, seed) and reused."""
    from ..compute.urban_demo import iter_generate

    root = ctx.cache_dir("sea-demo-data") / f"us8k-{clips_per_class_per_fold}-seed{seed}"
    if not (root / "metadata" / "UrbanSound8K.csv").exists():  # the CSV is written last
        for done, total in iter_generate(root, clips_per_class_per_fold, seed):
            yield Progress(done, total, f"{done}/{total} clips", phase="generate demo data")
        ctx.log(f"generated the demo dataset at {root}")
    return root


def run(config: EmbedConfig, ctx: RunContext):
    from ..compute.dataset_readers import read_dataset
    from ..compute.embedding_cache import EmbeddingCache
    from ..compute.teachers import load_teacher

    root = Path(config.dataset_dir) if config.dataset_dir else (
        yield from demo_dataset(ctx, config.demo_clips_per_class_per_fold, config.seed))
    dataset = read_dataset(root, config.dataset_format)
    for path, reason in dataset.skipped:
        ctx.warn(f"skipped {path}: {reason}")
    clips = dataset.clips[: config.max_clips] if config.max_clips else dataset.clips
    teacher = load_teacher(config.teacher)
    ctx.log(f"teacher {teacher.id}: {teacher.embedding_dim}-d, {teacher.sample_rate} Hz, {teacher.window_s} s windows")
    cache = EmbeddingCache(ctx.cache_dir("sea-embeddings"))
    rows, labels, folds, skipped = [], [], [], len(dataset.skipped)
    for i, clip in enumerate(clips):
        try:
            emb, _ = cache.embed(teacher, clip.path, config.hop_s, config.center, config.batch_size)
        except InputError as exc:
            ctx.warn(f"skipped {exc}")
            skipped += 1
            continue
        rows.append(emb.mean(axis=0))
        labels.append(clip.label)
        folds.append(clip.fold)
        yield Progress(i + 1, len(clips), f"{cache.hits} cached, {cache.misses} computed", phase="embed")
    if not rows:
        raise InputError(root, "no clip could be embedded")
    out = ctx.run_dir / "clip_embeddings.npz"
    np.savez(out, embeddings=np.stack(rows), labels=np.array(labels), folds=np.array(folds))
    ctx.artifact("clip-embeddings", out, teacher=teacher.id, dims=teacher.embedding_dim)
    ctx.metric("clips_embedded", len(rows), 0)
    ctx.metric("cache_hits", cache.hits, 0)
    ctx.metric("clips_skipped", skipped, 0)
    table = (f"dataset   {root} ({dataset.layout}, {len(dataset.classes)} classes)\n"
             f"teacher   {config.teacher} -> {teacher.embedding_dim}-d\n"
             f"clips     {len(rows)} embedded ({cache.hits} from cache, {cache.misses} computed), {skipped} skipped\n"
             f"cache     {ctx.cache_dir('sea-embeddings')}")
    return {"table": table, "clips": len(rows), "cache_hits": cache.hits, "computed": cache.misses}


def build_model(run_dir: Path, config: dict, name: str):
    """Profile target: the run's teacher and one analysis window of input."""
    import torch

    from ..compute.teachers import load_teacher

    teacher = load_teacher(EmbedConfig.model_validate(config).teacher)
    return teacher.model, torch.zeros(1, int(round(teacher.window_s * teacher.sample_rate)))
