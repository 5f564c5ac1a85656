"""The teacher-embedding cache: reuse, invalidation by every key part, resume after an
interruption, progress callback, bad files and damaged entries."""
import numpy as np
import pytest
import soundfile as sf
import torch

from workbench_sea.compute.embedding_cache import EmbeddingCache, cache_key
from workbench_sea.compute.teachers import Teacher


class Counting(torch.nn.Module):
    def __init__(self, fail_after=None):
        super().__init__()
        self.calls, self.fail_after = 0, fail_after

    def forward(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("stopped")  # like a kill in the middle of a batch
        return torch.stack([x.mean(1), x.std(1), x.max(1).values, x.min(1).values], dim=1)


def clip(path, seed, seconds=1.5):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.2 * rng.normal(size=int(8000 * seconds))).astype(np.float32), 8000)
    return path


def entries(root):
    return sorted(p.name for p in root.rglob("*.npz"))


def test_reuse_and_invalidation(tmp_path):
    model = Counting()
    teacher = Teacher("count-v1", model, 8000, 1.0, 4)
    path = clip(tmp_path / "c.wav", 0)
    cache = EmbeddingCache(tmp_path / "cache")
    a, ta = cache.embed(teacher, path, 0.5, True)
    b, tb = cache.embed(teacher, path, 0.5, True)
    assert np.array_equal(a, b) and np.array_equal(ta, tb) and a.shape == (3, 4) and ta.tolist() == [0.0, 0.5, 1.0]
    assert model.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    cache.embed(teacher, path, 0.25, True)   # hop changed
    cache.embed(teacher, path, 0.5, False)   # centring changed
    teacher.id = "count-v2"
    cache.embed(teacher, path, 0.5, True)    # teacher changed
    assert model.calls == 4 and cache.misses == 4 and len(entries(tmp_path / "cache")) == 4
    key = cache_key(path, "count-v2", 0.5, True)
    clip(path, 1)                            # audio content changed (same file name)
    assert cache_key(path, "count-v2", 0.5, True) != key
    cache.embed(teacher, path, 0.5, True)
    assert model.calls == 5
    again = EmbeddingCache(tmp_path / "cache")  # a later run on the same folder reuses everything
    again.embed(teacher, path, 0.5, True)
    assert (again.hits, again.misses, model.calls) == (1, 0, 5)


def test_resume_after_interruption_progress_and_bad_files(tmp_path):
    paths = [clip(tmp_path / f"c{i}.wav", i) for i in range(5)]
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVE")
    paths.insert(2, tmp_path / "broken.wav")
    root = tmp_path / "cache"
    first = Teacher("t", Counting(fail_after=3), 8000, 1.0, 4)
    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(root).embed_many(first, paths, 1.0, True, batch_size=8)
    assert len(entries(root)) == 3 and not [p for p in root.rglob("*") if p.name.startswith(".")]  # no temp files left

    calls = []
    second = Teacher("t", Counting(), 8000, 1.0, 4)
    cache = EmbeddingCache(root)
    result = cache.embed_many(second, paths, 1.0, True, batch_size=8,
                              progress=lambda done, total, path, cached: calls.append((done, total, path.name, cached)))
    assert second.model.calls == 2 and (cache.hits, cache.misses) == (3, 2)  # only the unfinished clips
    assert [c[:2] for c in calls] == [(i, 6) for i in range(1, 7)]
    assert [c[3] for c in calls] == [True, True, False, True, False, False]
    assert [c.path.name for c in result.done] == ["c0.wav", "c1.wav", "c2.wav", "c3.wav", "c4.wav"]
    assert len(result.skipped) == 1 and result.skipped[0][0].endswith("broken.wav")
    assert "broken.wav: cannot decode audio" in result.skipped[0][1]
    assert all(c.embeddings.shape == (2, 4) for c in result.done)


def test_damaged_entry_is_recomputed(tmp_path):
    teacher = Teacher("t", Counting(), 8000, 1.0, 4)
    path = clip(tmp_path / "c.wav", 0)
    cache = EmbeddingCache(tmp_path / "cache")
    emb, _ = cache.embed(teacher, path, 1.0, True)
    entry = next((tmp_path / "cache").rglob("*.npz"))
    entry.write_bytes(b"not a zip")
    again, _ = cache.embed(teacher, path, 1.0, True)
    assert np.array_equal(emb, again) and teacher.model.calls == 2
