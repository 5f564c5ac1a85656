"""Audio in: decode, validate, mono, resample, and OpenL3-compatible framing.

Every unusable file raises ``InputError(path, problem)``, so dataset code can skip it with a
per-file warning and a CLI can print one readable line. Problems named: file not found, empty
file, cannot decode (corrupt or unsupported), truncated WAV (header declares more audio than
the file holds), no samples, unsupported sample rate, NaN/Inf samples, too short, silent.

Framing follows openl3's ``_preprocess_audio_batch`` (edgel3 uses the same rule):
- ``center``: half a window of zeros is put *before* the signal only, so window i is centred
  on time i·hop;
- the end is zero-padded so that every sample falls in some window (a clip shorter than one
  window becomes one zero-padded window);
- hop in samples is ``int(hop_s · rate)`` (truncated, as openl3), timestamps ``i · hop_s``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

MIN_RATE, MAX_RATE = 1000, 384_000
SILENCE = 1e-5  # peak amplitude below which a clip carries nothing to embed
MIN_SECONDS = 0.1
FRAMING_VERSION = "openl3-1"  # part of cache keys: bump when framing changes
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _err(path: Path, problem: str):
    from workbench.api import InputError

    return InputError(path, problem)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decoded and validated samples as float32 (frames, channels) and the file's sample rate."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise _err(path, "file not found")
    if not path.is_file():
        raise _err(path, "not a file")
    if path.stat().st_size == 0:
        raise _err(path, "empty file (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as fh:
            rate, log = fh.samplerate, fh.extra_info
            data = fh.read(dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for broken files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _err(path, f"cannot decode audio (corrupt or unsupported format): {detail}") from None
    found = _TRUNCATED.search(log or "")
    if found and int(found.group(2)) < int(found.group(1)) < 0xFFFFFF00:  # 0xFFFFFFFF: streamed, size unknown
        raise _err(path, f"truncated: the header declares {int(found.group(1))} bytes of audio, the file holds "
                   f"{int(found.group(2))}")
    if data.shape[0] == 0:
        raise _err(path, "contains no audio samples")
    if not (MIN_RATE <= rate <= MAX_RATE):
        raise _err(path, f"unsupported sample rate {rate} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=1).sum())
        raise _err(path, f"contains NaN or infinite samples ({bad} of {data.shape[0]} frames)")
    return data, int(rate)


def load_audio(path: str | Path, target_rate: int, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Mono float32 at ``target_rate``, validated (see the module docstring)."""
    path = Path(path)
    data, rate = read_audio(path)
    audio = data.mean(axis=1)
    seconds = audio.shape[0] / rate
    if seconds < min_seconds:
        raise _err(path, f"too short: {seconds:.3f} s (at least {min_seconds:g} s)")
    peak = float(np.abs(audio).max())
    if peak < SILENCE:
        raise _err(path, f"silent (peak amplitude {peak:.1e}, below {SILENCE:g})")
    return resample(audio, rate, target_rate)


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return np.ascontiguousarray(audio, dtype=np.float32)
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), rate, target_rate).numpy()


def hop_samples(hop_s: float, rate: int) -> int:
    hop = int(hop_s * rate)
    if not hop_s > 0 or hop < 1:
        from workbench.api import ConfigError

        raise ConfigError(f"hop {hop_s!r} s is less than one sample at {rate} Hz", key="hop_s")
    return hop


def frame_audio(audio: np.ndarray, rate: int, window_s: float = 1.0, hop_s: float = 0.1,
                center: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(frames [n, window samples], timestamps [n] in seconds), openl3's rule (module docstring)."""
    window, hop = int(round(window_s * rate)), hop_samples(hop_s, rate)
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if center:
        audio = np.concatenate([np.zeros(window // 2, np.float32), audio])
    n = len(audio)
    pad = window - n if n < window else -(-(n - window) // hop) * hop - (n - window)
    if pad > 0:
        audio = np.concatenate([audio, np.zeros(pad, np.float32)])
    count = 1 + (len(audio) - window) // hop
    frames = np.lib.stride_tricks.sliding_window_view(audio, window)[::hop][:count]
    return np.array(frames, dtype=np.float32, copy=True), np.arange(count) * float(hop_s)  # own, writable


def count_frames(samples: int, rate: int, window_s: float = 1.0, hop_s: float = 0.1, center: bool = True) -> int:
    window, hop = int(round(window_s * rate)), hop_samples(hop_s, rate)
    n = samples + (window // 2 if center else 0)
    return 1 if n <= window else 1 + -(-(n - window) // hop)
