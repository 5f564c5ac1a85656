"""Teacher-embedding cache, content-addressed by (audio bytes, teacher id, framing).

The key is sha256 of: the audio file's sha256, the teacher's id (which changes with its
weights or input recipe), hop, centring and the framing rule's version. Any change of any part
gives a new entry; old entries are simply never read again. One small .npz per clip, written
to a temporary name and renamed into place (atomic on one filesystem), so an interrupted batch
keeps every clip finished before the interruption and a rerun computes only the rest. Entries
record their own key parts and are checked on read; an unreadable entry counts as a miss.

Layout: ``<root>/<key[:2]>/<key>.npz`` with arrays ``embeddings`` (frames x dims, float32),
``timestamps`` (seconds) and ``meta`` (JSON of the key parts).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from workbench.api import InputError

from .audio_io import FRAMING_VERSION

# progress(done, total, path, cached)
ProgressCallback = Callable[[int, int, Path, bool], None]


def audio_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    return h.hexdigest()


def key_parts(audio_path: str | Path, teacher_id: str, hop_s: float, center: bool) -> dict:
    return {"audio_sha256": audio_digest(audio_path), "teacher": teacher_id, "hop_s": round(float(hop_s), 9),
            "center": bool(center), "framing": FRAMING_VERSION}


def cache_key(audio_path: str | Path, teacher_id: str, hop_s: float, center: bool) -> str:
    return _key(key_parts(audio_path, teacher_id, hop_s, center))


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]


@dataclass
class ClipResult:
    path: Path
    embeddings: np.ndarray | None  # None when the clip was skipped
    timestamps: np.ndarray | None
    cached: bool = False
    error: str | None = None  # the InputError message when skipped


@dataclass
class BatchResult:
    clips: list[ClipResult] = field(default_factory=list)

    @property
    def done(self) -> list[ClipResult]:
        return [c for c in self.clips if c.error is None]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return [(str(c.path), c.error) for c in self.clips if c.error is not None]


class EmbeddingCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, parts: dict | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if parts is not None and json.loads(str(data["meta"])) != parts:
                    return None
                return data["embeddings"], data["timestamps"]
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            return None

    def put(self, key: str, embeddings: np.ndarray, timestamps: np.ndarray, parts: dict | None = None) -> Path:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, embeddings=np.asarray(embeddings, dtype=np.float32),
                         timestamps=np.asarray(timestamps, dtype=np.float64), meta=np.array(json.dumps(parts or {})))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def embed(self, teacher, audio_path: str | Path, hop_s: float, center: bool,
              batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of one file, from the cache or computed and stored. Raises InputError for a bad file."""
        emb, times, _ = self._embed(teacher, Path(audio_path), hop_s, center, batch_size)
        return emb, times

    def _embed(self, teacher, path: Path, hop_s: float, center: bool, batch_size: int):
        from .teachers import embed_file

        parts = key_parts(path, teacher.id, hop_s, center)
        key = _key(parts)
        found = self.get(key, parts)
        if found is not None:
            self.hits += 1
            return found[0], found[1], True
        emb, times = embed_file(teacher, path, hop_s, center, batch_size)
        self.put(key, emb, times, parts)
        self.misses += 1
        return emb, times, False

    def iter_embed(self, teacher, paths: Iterable[str | Path], hop_s: float, center: bool,
                   batch_size: int = 32) -> Iterator[ClipResult]:
        """One ClipResult per path, in order; bad files come back with ``error`` set instead of raising.
        Stopping the iteration (cancel, crash) keeps every entry already written."""
        for p in paths:
            path = Path(p)
            try:
                emb, times, cached = self._embed(teacher, path, hop_s, center, batch_size)
            except InputError as exc:
                yield ClipResult(path, None, None, error=str(exc))
                continue
            yield ClipResult(path, emb, times, cached)

    def embed_many(self, teacher, paths: Iterable[str | Path], hop_s: float, center: bool, batch_size: int = 32,
                   progress: ProgressCallback | None = None) -> BatchResult:
        paths = list(paths)
        result = BatchResult()
        for i, clip in enumerate(self.iter_embed(teacher, paths, hop_s, center, batch_size), start=1):
            result.clips.append(clip)
            if progress is not None:
                progress(i, len(paths), clip.path, clip.cached)
        return result
