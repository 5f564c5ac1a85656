"""Audio in: decode, mono, resample, validate, and OpenL3-style framing.

Every unusable file raises InputError naming the file and the problem, so dataset code can
skip it with a per-file warning and a CLI can print one readable line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_RATE, MAX_RATE = 1000, 384_000
SILENCE = 1e-5  # peak amplitude below which a clip carries nothing to embed


def load_audio(path: str | Path, target_rate: int, min_seconds: float = 0.1) -> np.ndarray:
    """Mono float32 at `target_rate`."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise _err(path, "file not found")
    if path.stat().st_size == 0:
        raise _err(path, "empty file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types for broken files
        raise _err(path, f"cannot decode audio (corrupt or unsupported format): {exc}") from None
    if data.shape[0] == 0:
        raise _err(path, "contains no audio samples")
    if not (MIN_RATE <= rate <= MAX_RATE):
        raise _err(path, f"unsupported sample rate {rate} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)")
    if not np.isfinite(data).all():
        raise _err(path, "contains NaN or infinite samples")
    audio = data.mean(axis=1)
    if audio.shape[0] / rate < min_seconds:
        raise _err(path, f"too short: {audio.shape[0] / rate:.3f} s (at least {min_seconds} s)")
    if np.abs(audio).max() < SILENCE:
        raise _err(path, "silent (peak amplitude below 1e-5)")
    if rate != target_rate:
        import torch
        import torchaudio.functional as AF

        audio = AF.resample(torch.from_numpy(audio), rate, target_rate).numpy()
    return audio.astype(np.float32)


def _err(path: Path, problem: str):
    from workbench.api import InputError

    return InputError(path, problem)


def frame_audio(audio: np.ndarray, rate: int, window_s: float = 1.0, hop_s: float = 0.1,
                center: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Windows of `window_s` every `hop_s` (as openl3: centre padding of half a window; a clip
    shorter than one window is zero-padded to one). Returns (frames [N, window], timestamps s)."""
    window, hop = int(round(window_s * rate)), max(int(round(hop_s * rate)), 1)
    if center:
        audio = np.pad(audio, (window // 2, window // 2))
    if len(audio) < window:
        audio = np.pad(audio, (0, window - len(audio)))
    n = 1 + (len(audio) - window) // hop
    index = np.arange(window)[None, :] + hop * np.arange(n)[:, None]
    return audio[index], np.arange(n) * hop / rate
