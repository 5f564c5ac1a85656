"""Frame-level training data of a distillation: per clip, the teacher's embedding frames, the
student's 1 s input windows at the same timestamps and each frame's sound level.

Frame i of a clip is the teacher's embedding at timestamp t_i; the student sees the 1 s window
(at 8 kHz) centred on t_i (``center=True``, zero-padded outside the clip, as the teacher's
windows are) or starting at t_i (``center=False``). Its level (dB re full scale, A-weighted,
from ``loudness.frame_spl_db``) is measured over the same window.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class FrameData:
    """Frames of all clips, concatenated; ``clip`` maps each frame to its clip (0..n_clips-1)."""

    teacher: np.ndarray  # (frames, teacher dims) float32
    audio: np.ndarray  # (frames, student window samples) float32
    loudness_db: np.ndarray  # (frames,) float64
    clip: np.ndarray  # (frames,) int64
    labels: np.ndarray  # (clips,) int64 class index
    folds: np.ndarray  # (clips,) int64, 1-based
    classes: list[str]
    paths: list[Path] = field(default_factory=list)
    # the student front end's output per frame (a torch tensor), filled on first use by the distill
    # pipeline so the student and every from-scratch fold share one computation
    spectrograms: Any = field(default=None, repr=False, compare=False)

    @property
    def frame_labels(self) -> np.ndarray:
        return self.labels[self.clip]

    @property
    def n_clips(self) -> int:
        return len(self.labels)


def student_windows(audio: np.ndarray, rate: int, timestamps_s: np.ndarray, window_s: float,
                    center: bool) -> np.ndarray:
    """(frames, window samples) windows of ``audio`` at the timestamps, zero-padded outside the clip."""
    window = int(round(window_s * rate))
    starts = np.rint(np.asarray(timestamps_s, dtype=np.float64) * rate).astype(np.int64)
    if center:
        starts = starts - window // 2
    lead = max(0, -int(starts.min(initial=0)))
    tail = max(0, int(starts.max(initial=0)) + window - len(audio))
    padded = np.concatenate([np.zeros(lead, np.float32), np.asarray(audio, np.float32), np.zeros(tail, np.float32)])
    idx = (starts + lead)[:, None] + np.arange(window)[None, :]
    return padded[idx]


def window_centres(timestamps_s: np.ndarray, window_s: float, center: bool) -> np.ndarray:
    t = np.asarray(timestamps_s, dtype=np.float64)
    return t if center else t + window_s / 2


def mean_pool(frames: np.ndarray, clip: np.ndarray, n_clips: int) -> np.ndarray:
    """Clip-level embeddings: the mean of each clip's frames."""
    frames = np.asarray(frames, dtype=np.float64)
    sums = np.zeros((n_clips, frames.shape[1]))
    np.add.at(sums, clip, frames)
    counts = np.bincount(clip, minlength=n_clips).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} clip(s) have no frames")
    return (sums / counts[:, None]).astype(np.float32)


def assign_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """1-based folds for a dataset without them: each class dealt round-robin after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        out[idx] = np.arange(len(idx)) % folds + 1
    return out


def split_clips(n_clips: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train clips, validation clips), seeded; at least one clip on each side when there are two."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_clips)
    n_val = int(round(n_clips * val_fraction))
    n_val = min(max(n_val, 1 if n_clips > 1 else 0), n_clips - 1) if n_clips > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])
