import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.api import ConfigError, InputError
from workbench_sea.cli import main as sea_main
from workbench_sea.compute.audio_io import frame_audio, load_audio
from workbench_sea.compute.embedding_cache import EmbeddingCache, cache_key
from workbench_sea.compute.teachers import load_teacher

sys.path.insert(0, str(Path(__file__).parent))
from sea_keras_reference import evaluate  # noqa: E402

SEA64 = Path(__file__).resolve().parents[3].parent / "shared" / "reference-models" / "edgel3_sea_ust_audio_emb_64.h5"
needs_model = pytest.mark.skipif(not SEA64.exists(), reason=f"reference model not found at {SEA64} (shared/ absent)")


def write(path, data, rate=8000, **kw):
    sf.write(path, np.asarray(data, dtype=np.float32), rate, **kw)
    return path


@pytest.mark.parametrize("make,problem", [
    (lambda p: p.write_bytes(b"") or p, "empty file"),
    (lambda p: write(p, np.zeros(8000)), "silent"),
    (lambda p: write(p, np.full(200, 0.3)), "too short"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)) or p, "cannot decode audio"),
    (lambda p: write(p, np.r_[np.full(4000, 0.1), np.nan, np.zeros(3999)], subtype="FLOAT"), "NaN or infinite"),
    (lambda p: write(p, np.full(900, 0.2), rate=300), "unsupported sample rate 300 Hz"),
])
def test_bad_audio_is_a_named_error(tmp_path, make, problem):
    path = tmp_path / "clip.wav"
    make(path)
    with pytest.raises(InputError) as err:
        load_audio(path, 8000)
    assert str(err.value).startswith(str(path)) and problem in str(err.value)


def test_downmix_resample_and_framing(tmp_path):
    t = np.arange(16000) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 200 * t)], axis=1) * 0.5
    audio = load_audio(write(tmp_path / "s.flac", stereo, rate=16000), 8000)
    assert audio.shape == (8000,) and abs(np.abs(audio).max() - 0.5) < 0.02
    frames, times = frame_audio(audio, 8000, 1.0, 0.5, center=True)
    assert frames.shape == (3, 8000) and list(times) == [0.0, 0.5, 1.0]
    assert np.all(frames[0, :4000] == 0)  # centre padding: window 0 is centred on t = 0
    frames, times = frame_audio(audio, 8000, 1.0, 1.0, center=False)
    assert frames.shape == (1, 8000) and np.array_equal(frames[0], audio)


@needs_model
def test_cli_embed_matches_independent_keras_evaluation(tmp_path):
    t = np.arange(8000) / 8000
    clips = {"tone": 0.5 * np.sin(2 * np.pi * 523 * t), "noise": 0.2 * np.random.default_rng(1).normal(size=8000),
             "chirp": 0.3 * np.sin(2 * np.pi * (200 + 1200 * t) * t)}
    files = [str(write(tmp_path / f"{k}.wav", v, subtype="FLOAT")) for k, v in clips.items()]
    out = tmp_path / "emb.npz"
    assert sea_main(["embed", "--teacher", f"keras-h5:{SEA64}", "--hop", "1", "--no-center", *files, "-o", str(out)]) == 0
    data = np.load(out)
    for name, audio in clips.items():
        ours = data[name]
        assert ours.shape == (1, 64) and list(data[f"{name}__timestamps"]) == [0.0]
        ref = evaluate(SEA64, sf.read(tmp_path / f"{name}.wav", dtype="float64")[0])
        assert np.linalg.norm(ours[0] - ref) / np.linalg.norm(ref) <= 5e-3, name


def test_cli_bad_file_exits_2_naming_it(tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF????")
    code = sea_main(["embed", "--teacher", "aisfx", str(bad), "-o", str(tmp_path / "o.npz")])
    assert code == 2 and f"{bad}: cannot decode audio" in capsys.readouterr().err


def test_aisfx_teacher_loads_safely_and_embeds():
    pytest.importorskip("aisfx")
    teacher = load_teacher("aisfx")
    assert teacher.embedding_dim == 512 and teacher.sample_rate == 44100
    assert sum(p.numel() for p in teacher.model.parameters()) > 4_500_000
    x = np.random.default_rng(0).normal(size=(2, int(teacher.window_s * 44100))).astype(np.float32) * 0.1
    emb = teacher.embed_frames(x)
    assert emb.shape == (2, 512) and np.isfinite(emb).all() and not np.allclose(emb[0], emb[1])


def test_torchscript_teacher_round_trip(tmp_path):
    class Mean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sample_rate = 8000  # the declared rate travels inside the archive

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean(1), x.std(1), x.abs().max(1).values], dim=1)

    path = tmp_path / "m.pt"
    torch.jit.script(Mean()).save(str(path))
    teacher = load_teacher(f"torchscript:{path}")
    assert teacher.sample_rate == 8000 and teacher.embedding_dim == 3
    assert load_teacher(f"torchscript:{path}@16000").sample_rate == 16000
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(InputError, match="bad.pt: not a TorchScript archive"):
        load_teacher(f"torchscript:{tmp_path / 'bad.pt'}")
    with pytest.raises(ConfigError, match="OpenL3 weights"):
        load_teacher("openl3:mel256/music/512")


def test_cache_reuses_and_invalidates(tmp_path):
    class Counting(torch.nn.Module):
        calls = 0

        def forward(self, x):
            Counting.calls += 1
            return x[:, :4]

    from workbench_sea.compute.teachers import Teacher

    teacher = Teacher("count-v1", Counting(), 8000, 1.0, 4)
    clip = write(tmp_path / "c.wav", 0.3 * np.sin(np.arange(16000) / 5.0))
    cache = EmbeddingCache(tmp_path / "cache")
    a, _ = cache.embed(teacher, clip, 0.5, True)
    b, _ = cache.embed(teacher, clip, 0.5, True)
    assert np.array_equal(a, b) and Counting.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    cache.embed(teacher, clip, 0.25, True)  # framing changed
    teacher.id = "count-v2"
    cache.embed(teacher, clip, 0.5, True)  # teacher changed
    assert Counting.calls == 3
    k1 = cache_key(clip, "count-v2", 0.5, True)
    write(clip, 0.3 * np.cos(np.arange(16000) / 5.0))  # audio changed
    assert cache_key(clip, "count-v2", 0.5, True) != k1
    # a new cache object on the same folder (a rerun after an interruption) finds what was done
    again = EmbeddingCache(tmp_path / "cache")
    again.embed(teacher, tmp_path / "c.wav", 0.25, True)
    assert again.misses == 1  # audio changed, so this one is new
    assert not list((tmp_path / "cache").rglob("*.tmp.npz"))
