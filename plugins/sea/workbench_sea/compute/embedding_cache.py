"""Teacher-embedding cache, content-addressed: sha256(audio bytes) + teacher id + framing.

One small .npz per clip, written atomically, so an interrupted batch keeps everything done
so far and a rerun picks up where it stopped. Any change of key gives a different file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np


def cache_key(audio_path: str | Path, teacher_id: str, hop_s: float, center: bool) -> str:
    digest = hashlib.sha256(Path(audio_path).read_bytes()).hexdigest()
    framing = json.dumps({"teacher": teacher_id, "hop_s": round(hop_s, 6), "center": bool(center)}, sort_keys=True)
    return hashlib.sha256(f"{digest}|{framing}".encode()).hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        path = self._path(key)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return data["embeddings"], data["timestamps"]

    def put(self, key: str, embeddings: np.ndarray, timestamps: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, embeddings=embeddings.astype(np.float32), timestamps=timestamps.astype(np.float64))
        os.replace(tmp, path)

    def embed(self, teacher, audio_path: str | Path, hop_s: float, center: bool, batch_size: int = 32):
        """Cached embeddings of one file; computes and stores them on a miss."""
        from .teachers import embed_file

        key = cache_key(audio_path, teacher.id, hop_s, center)
        found = self.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        emb, times = embed_file(teacher, audio_path, hop_s, center, batch_size)
        self.put(key, emb, times)
        return emb, times
