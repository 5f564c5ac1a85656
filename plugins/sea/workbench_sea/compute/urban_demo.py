"""Synthetic urban sounds in the UrbanSound8K layout, for the demo and the tests.

Ten classes, each a small procedural recipe (pitch, rhythm, loudness vary per clip), placed
over background noise with a random room reverberation, sometimes overlapped by a quieter
event of another class. Deterministic per seed: the same seed writes the same bytes.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
           "engine_idling", "gun_shot", "jackhammer", "siren", "street_music")
CSV_HEADER = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


def _tone(f: np.ndarray, sr: int, harmonics: list[float]) -> np.ndarray:
    """A harmonic tone following the instantaneous frequency track `f` (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(f) / sr
    return sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics))


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = max(int(attack * sr), 1), max(int(release * sr), 1)
    env[:a] = np.linspace(0, 1, min(a, n))
    env[-r:] *= np.linspace(1, 0, min(r, n))
    return env


def _bandnoise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec[(freqs < lo) | (freqs > hi)] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-9)


def _burst(out: np.ndarray, start: int, sig: np.ndarray) -> None:
    end = min(start + len(sig), len(out))
    if start < len(out):
        out[start:end] += sig[: end - start]


def air_conditioner(rng, n, sr):
    f0 = rng.uniform(45, 65)
    hum = _tone(np.full(n, f0), sr, [1, 0.6, 0.4, 0.2])
    return 0.5 * hum + 0.6 * _bandnoise(rng, n, sr, 80, rng.uniform(1500, 3000))


def car_horn(rng, n, sr):
    out = np.zeros(n)
    f0 = rng.uniform(350, 520)
    for _ in range(rng.integers(1, 4)):
        dur = int(rng.uniform(0.25, 1.0) * sr)
        seg = _tone(np.full(dur, f0), sr, [1, 0.8, 0.6, 0.4, 0.3]) + 0.7 * _tone(np.full(dur, f0 * 1.26), sr, [1, 0.5, 0.3])
        _burst(out, int(rng.uniform(0, 0.7) * n), seg * _envelope(dur, sr, 0.01, 0.05))
    return out


def children_playing(rng, n, sr):
    out = np.zeros(n)
    for _ in range(rng.integers(4, 9)):
        dur = int(rng.uniform(0.2, 0.7) * sr)
        t = np.arange(dur) / sr
        f = rng.uniform(260, 450) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(4, 8) * t)) * (1 + rng.uniform(-0.3, 0.3) * t)
        seg = _tone(f, sr, [1, 0.5, 0.35, 0.2, 0.1]) * _envelope(dur, sr, 0.03, 0.1)
        _burst(out, int(rng.uniform(0, 0.9) * n), rng.uniform(0.3, 1.0) * seg)
    return out + 0.15 * _bandnoise(rng, n, sr, 300, 3000)


def dog_bark(rng, n, sr):
    out = np.zeros(n)
    start = rng.uniform(0, 0.4)
    for _ in range(rng.integers(1, 5)):
        dur = int(rng.uniform(0.08, 0.2) * sr)
        t = np.arange(dur) / sr
        f = rng.uniform(400, 800) * np.exp(-t * rng.uniform(3, 8))
        seg = (_tone(f, sr, [1, 0.7, 0.5, 0.3]) + 0.4 * _bandnoise(rng, dur, sr, 500, 2500)) * np.exp(-t * 20)
        _burst(out, int(start * n), seg)
        start += rng.uniform(0.12, 0.3)
    return out


def drilling(rng, n, sr):
    t = np.arange(n) / sr
    f0 = rng.uniform(900, 2200)
    am = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(20, 40) * t)
    return am * (_tone(np.full(n, f0), sr, [1, 0.5, 0.3]) + 0.3 * _bandnoise(rng, n, sr, f0 * 0.8, f0 * 3))


def engine_idling(rng, n, sr):
    rate = rng.uniform(18, 35)
    pulses = np.zeros(n)
    pulses[(np.arange(0, n / sr, 1 / rate) * sr).astype(int)] = 1.0
    kernel = np.exp(-np.arange(int(0.02 * sr)) / (0.004 * sr)) * _bandnoise(rng, int(0.02 * sr), sr, 40, 600)
    return np.convolve(pulses, kernel)[:n] + 0.3 * _bandnoise(rng, n, sr, 30, 400)


def gun_shot(rng, n, sr):
    out = np.zeros(n)
    for _ in range(rng.integers(1, 4)):
        dur = int(0.4 * sr)
        t = np.arange(dur) / sr
        _burst(out, int(rng.uniform(0, 0.8) * n), _bandnoise(rng, dur, sr, 100, 6000) * np.exp(-t * rng.uniform(15, 40)) * 2)
    return out


def jackhammer(rng, n, sr):
    rate = rng.uniform(9, 16)
    out = np.zeros(n)
    hit = int(0.03 * sr)
    for s in np.arange(rng.uniform(0, 0.2), n / sr, 1 / rate):
        _burst(out, int(s * sr), _bandnoise(rng, hit, sr, 200, 5000) * np.exp(-np.arange(hit) / (0.008 * sr)))
    return out


def siren(rng, n, sr):
    t = np.arange(n) / sr
    lfo = rng.uniform(0.2, 0.5) if rng.random() < 0.5 else rng.uniform(2.5, 5)  # wail or yelp
    f = rng.uniform(650, 850) + rng.uniform(300, 550) * (0.5 + 0.5 * np.sin(2 * np.pi * lfo * t + rng.uniform(0, 6)))
    return _tone(f, sr, [1, 0.3, 0.15])


def street_music(rng, n, sr):
    out = np.zeros(n)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    root, beat = rng.uniform(180, 330), rng.uniform(0.18, 0.4)
    for s in np.arange(0, n / sr, beat):
        dur = int(beat * sr * 0.95)
        f = root * 2 ** (rng.choice(scale) / 12)
        _burst(out, int(s * sr), _tone(np.full(dur, f), sr, [1, 0.6, 0.4, 0.25, 0.15]) * _envelope(dur, sr, 0.01, beat * 0.6))
        if rng.random() < 0.5:  # a low drum on the beat
            d = int(0.1 * sr)
            _burst(out, int(s * sr), np.sin(2 * np.pi * 70 * np.arange(d) / sr) * np.exp(-np.arange(d) / (0.03 * sr)))
    return out


RECIPES: dict[str, Callable] = {name: globals()[name] for name in CLASSES}


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-9)


def synthesize(class_name: str, rng: np.random.Generator, seconds: float = 4.0, sr: int = 22050) -> np.ndarray:
    n = int(seconds * sr)
    event = _normalise(RECIPES[class_name](rng, n, sr))
    if rng.random() < 0.3:  # overlap: a quieter event of another class
        other = CLASSES[rng.integers(len(CLASSES))]
        if other != class_name:
            event = event + rng.uniform(0.1, 0.3) * _normalise(RECIPES[other](rng, n, sr))
    # room: exponentially decaying noise impulse response
    rt = rng.uniform(0.05, 0.6)
    ir_n = int(rt * sr)
    ir = rng.normal(size=ir_n) * np.exp(-6.9 * np.arange(ir_n) / ir_n)
    ir[0] = 1.0
    wet = np.fft.irfft(np.fft.rfft(event, n + ir_n) * np.fft.rfft(ir / np.abs(ir).sum() * 4, n + ir_n), n + ir_n)[:n]
    mix = _normalise(0.6 * event + 0.4 * _normalise(wet))
    background = _normalise(np.cumsum(rng.normal(size=n)) * 0.02 + rng.normal(size=n) * 0.5)  # brown + white
    snr_db = rng.uniform(3, 25)
    x = mix + background * 10 ** (-snr_db / 20)
    return (x / np.abs(x).max() * 10 ** (rng.uniform(-18, -3) / 20)).astype(np.float32)


def iter_generate(root: str | Path, clips_per_class_per_fold: int = 4, seed: int = 0, seconds: float = 4.0,
                 sr: int = 22050) -> Iterator[tuple[int, int]]:
    """Write audio/foldN/*.wav and metadata/UrbanSound8K.csv under `root`, yielding
    (done, total) after each clip so a pipeline can report progress and be cancelled."""
    root = Path(root)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    rows = []
    total = 10 * len(CLASSES) * clips_per_class_per_fold
    for fold in range(1, 11):
        (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
        for class_id, name in enumerate(CLASSES):
            for k in range(clips_per_class_per_fold):
                # one generator per clip: any subset regenerates identically
                rng = np.random.default_rng([seed, fold, class_id, k])
                fs_id = 100000 + fold * 1000 + class_id * 50 + k
                fname = f"{fs_id}-{class_id}-0-{k}.wav"
                sf.write(root / "audio" / f"fold{fold}" / fname, synthesize(name, rng, seconds, sr), sr, subtype="PCM_16")
                rows.append((fname, fs_id, 0.0, seconds, 1, fold, class_id, name))
                yield len(rows), total
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def generate(root: str | Path, clips_per_class_per_fold: int = 4, seed: int = 0, **kw) -> Path:
    for _ in iter_generate(root, clips_per_class_per_fold, seed, **kw):
        pass
    return Path(root)
