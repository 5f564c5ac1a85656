"""Per-frame sound level, aligned with the teacher-embedding frames.

SEA's loudness-informed sampling (``spl`` and ``dpp-qd`` in ``sampling.py``) needs one level
per teacher embedding. The original work used the SONYC sensors' calibrated dB(A) SPL; a
general dataset has no calibration, so the level here is in dB relative to digital full scale
(RMS, a full-scale sine reads about -3 dB). Only the *ranks* of levels within a time window
drive sampling, so the missing absolute offset does not matter.

Alignment follows ``audio_io.frame_audio`` (openl3's rule): embedding frame i covers the
``window_s`` seconds centred on its timestamp ``i * hop_s``, zero-padded outside the clip.
"""
from __future__ import annotations

import numpy as np

FLOOR_DB = -120.0  # level reported for digital silence (instead of -inf)


def a_weighting_gain(freqs_hz: np.ndarray) -> np.ndarray:
    """Magnitude of the IEC 61672-1 A-weighting curve (linear, 1.0 at 1 kHz)."""
    f2 = np.asarray(freqs_hz, dtype=np.float64) ** 2
    num = (12194.0 ** 2) * f2 ** 2
    den = (f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2)) * (f2 + 12194.0 ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(den > 0, num / den, 0.0)
    return gain * 10 ** (2.0 / 20)  # +2.00 dB normalises the curve to 0 dB at 1 kHz


def _a_weighted(audio: np.ndarray, rate: int) -> np.ndarray:
    # Zero-phase weighting in the frequency domain; padding keeps the circular wrap away from the clip.
    n = len(audio)
    size = 1 << int(np.ceil(np.log2(max(2 * n, 2))))
    spectrum = np.fft.rfft(audio, size)
    spectrum *= a_weighting_gain(np.fft.rfftfreq(size, 1.0 / rate))
    return np.fft.irfft(spectrum, size)[:n]


def frame_spl_db(audio: np.ndarray, rate: int, timestamps_s: np.ndarray, window_s: float = 1.0,
                 *, a_weighting: bool = True) -> np.ndarray:
    """Level in dB (re full scale, RMS) of the ``window_s`` window centred at each timestamp.

    One float64 value per timestamp. ``a_weighting`` applies the A curve first (dB(A), the
    weighting of the SONYC SPL used by SEA). Samples outside the clip count as zeros, exactly
    as the zero-padded embedding frames see them.
    """
    from workbench.api import ConfigError

    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    ts = np.asarray(timestamps_s, dtype=np.float64).reshape(-1)
    if not (isinstance(rate, (int, np.integer)) and rate > 0):
        raise ConfigError(f"sample rate must be a positive integer, got {rate!r}", key="rate")
    if not window_s > 0 or int(round(window_s * rate)) < 1:
        raise ConfigError(f"window {window_s!r} s is shorter than one sample at {rate} Hz", key="window_s")
    if x.size == 0:
        raise ConfigError("audio is empty", key="audio")
    if not np.isfinite(x).all():
        raise ConfigError("audio contains NaN or infinite samples", key="audio")
    if not np.isfinite(ts).all():
        raise ConfigError("timestamps contain NaN or infinite values", key="timestamps_s")
    if a_weighting:
        x = _a_weighted(x, rate)
    window = int(round(window_s * rate))
    # Prefix sums of energy give every window's mean square in O(1).
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    start = np.rint(ts * rate).astype(np.int64) - window // 2
    lo = np.clip(start, 0, x.size)
    hi = np.clip(start + window, 0, x.size)
    mean_square = (energy[hi] - energy[lo]) / window
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(np.maximum(mean_square, 0.0))
    return np.maximum(level, FLOOR_DB)
