"""Audio decoding, validation (each bad kind is a named InputError) and openl3-compatible framing."""
import numpy as np
import pytest
import soundfile as sf

from workbench.api import ConfigError, InputError
from workbench_sea.compute.audio_io import count_frames, frame_audio, load_audio


def write(path, data, rate=8000, **kw):
    sf.write(path, np.asarray(data, dtype=np.float32), rate, **kw)
    return path


def truncated(path):
    write(path, 0.1 * np.random.default_rng(0).normal(size=8000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD = {
    "empty": (lambda p: p.write_bytes(b"") or p, "empty file"),
    "silent": (lambda p: write(p, np.zeros(8000)), "silent"),
    "too_short": (lambda p: write(p, np.full(200, 0.3)), "too short: 0.025 s"),
    "corrupt": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)) or p, "cannot decode audio"),
    "no_samples": (lambda p: write(p, np.zeros(0)), "contains no audio samples"),
    "header_only": (lambda p: p.write_bytes(write(p, np.full(800, 0.1)).read_bytes()[:44]) or p,
                    "truncated: the header declares 1600 bytes of audio, the file holds 0"),
    "truncated": (truncated, "truncated: the header declares 16000 bytes"),
    "nan": (lambda p: write(p, np.r_[np.full(4000, 0.1), np.nan, np.zeros(3999)], subtype="FLOAT"), "NaN or infinite"),
    "inf": (lambda p: write(p, np.r_[np.full(4000, 0.1), np.inf, np.zeros(3999)], subtype="FLOAT"), "NaN or infinite"),
    "odd_rate": (lambda p: write(p, np.full(900, 0.2), rate=300), "unsupported sample rate 300 Hz"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_audio_is_a_named_error(tmp_path, kind):
    make, problem = BAD[kind]
    path = tmp_path / f"{kind}.wav"
    make(path)
    with pytest.raises(InputError) as err:
        load_audio(path, 8000)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value), str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="nope.wav: file not found"):
        load_audio(tmp_path / "nope.wav", 8000)
    with pytest.raises(InputError, match="not a file"):
        load_audio(tmp_path, 8000)


def test_downmix_resample_formats(tmp_path):
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 200 * t)
    stereo = np.stack([tone, -tone * 0.5 + tone], axis=1) * 0.5  # mean = 0.375 * tone
    for suffix in ("wav", "flac", "ogg"):
        audio = load_audio(write(tmp_path / f"s.{suffix}", stereo, rate=16000), 8000)
        assert audio.dtype == np.float32 and audio.shape == (8000,)
        assert abs(np.abs(audio).max() - 0.375) < 0.03, suffix
    assert load_audio(tmp_path / "s.wav", 16000).shape == (16000,)  # same rate: untouched


def openl3_expected_frames(n, rate, hop_s, center, window_s=1.0):
    """openl3's documented rule, restated: centring pads half a window in front; the end is padded
    so every sample lies in a window; hop int(hop_s * rate)."""
    window, hop = int(window_s * rate), int(hop_s * rate)
    n += window // 2 if center else 0
    return 1 if n <= window else 1 + int(np.ceil((n - window) / hop))


@pytest.mark.parametrize("seconds,hop,center", [(1.0, 0.5, True), (1.0, 1.0, False), (2.3, 1.0, False),
                                                (0.4, 0.1, False), (3.05, 0.1, True), (4.0, 0.25, True)])
def test_framing_follows_openl3(seconds, hop, center):
    rate = 1000
    audio = np.arange(1, int(seconds * rate) + 1, dtype=np.float32)  # sample i holds i + 1: positions visible
    frames, times = frame_audio(audio, rate, 1.0, hop, center)
    n = openl3_expected_frames(len(audio), rate, hop, center)
    assert frames.shape == (n, rate) and count_frames(len(audio), rate, 1.0, hop, center) == n
    assert np.allclose(times, np.arange(n) * hop)
    offset = rate // 2 if center else 0
    for i in (0, n - 1):
        start = i * int(hop * rate) - offset  # first sample of window i in the original signal
        idx = np.arange(start, start + rate)
        expected = np.where((idx >= 0) & (idx < len(audio)), idx + 1, 0)
        assert np.array_equal(frames[i], expected)
    assert frames.flags.writeable
    covered = {int(v) for v in frames.ravel() if v}
    assert covered == set(range(1, len(audio) + 1))  # every sample is in some window


def test_framing_examples_and_bad_hop():
    frames, times = frame_audio(np.ones(8000, np.float32), 8000, 1.0, 0.5, center=True)
    assert frames.shape == (2, 8000) and times.tolist() == [0.0, 0.5]
    assert np.all(frames[0, :4000] == 0) and np.all(frames[0, 4000:] == 1)  # window 0 centred on t = 0
    with pytest.raises(ConfigError, match="less than one sample"):
        frame_audio(np.ones(8000, np.float32), 8000, 1.0, 0.0)
