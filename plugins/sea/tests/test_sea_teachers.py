"""Teachers by spec: aiSFX (safe load, 512-d), TorchScript round trip, spec errors."""
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.api import ConfigError, InputError
from workbench_sea.compute.teachers import (AisfxNet, Teacher, embed_file, load_aisfx_weights, load_teacher,
                                            peak_normalise)


@pytest.fixture(scope="module")
def aisfx():
    pytest.importorskip("aisfx", reason="aisfx not installed (pip install --no-deps aisfx==0.1.2)")
    return load_teacher("aisfx")


def test_aisfx_loads_safely_and_embeds_512(aisfx):
    assert aisfx.embedding_dim == 512 and aisfx.sample_rate == 44100 and aisfx.window_samples == 99 * 1024
    assert aisfx.id.startswith("aisfx:") and aisfx.id.endswith(":v2")
    assert sum(p.numel() for p in aisfx.model.parameters()) == 4_686_144  # ~4.7 M
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, aisfx.window_samples)).astype(np.float32) * 0.1
    emb = aisfx.embed_frames(x)
    assert emb.shape == (2, 512) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert not np.allclose(emb[0], emb[1]) and np.array_equal(emb, aisfx.embed_frames(x, batch_size=1))
    with torch.no_grad():  # the front end sees exactly the 100 frames aiSFX's blocks hold
        assert aisfx.model.front(torch.from_numpy(x)).shape == (2, 100, 96)


def test_aisfx_network_equals_the_packages_own(aisfx):
    cnn2d = pytest.importorskip("aisfx.models.cnn2d")
    theirs = cnn2d.EmbeddingNet("max", 3, 1, 64).eval()
    theirs.load_state_dict(aisfx.model.net.state_dict())
    spec = torch.rand(2, 100, 96)
    with torch.no_grad():
        assert torch.allclose(aisfx.model.net(spec), theirs(spec), atol=1e-5)


def test_aisfx_file_level_peak_normalisation(aisfx, tmp_path):
    t = np.arange(44100 * 3) / 44100
    audio = (0.5 * np.sin(2 * np.pi * 440 * t) * (t < 1.5) + 0.01 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)
    sf.write(tmp_path / "loud.wav", audio, 44100, subtype="FLOAT")
    sf.write(tmp_path / "quiet.wav", audio * 0.1, 44100, subtype="FLOAT")
    a, ta = embed_file(aisfx, tmp_path / "loud.wav", hop_s=1.0)
    b, _ = embed_file(aisfx, tmp_path / "quiet.wav", hop_s=1.0)
    assert a.shape == (3, 512) and ta.tolist() == [0.0, 1.0, 2.0]
    assert np.allclose(a, b, rtol=1e-3, atol=1e-3)  # the file's level does not matter ...
    assert np.abs(peak_normalise(audio)).max() == pytest.approx(1.0)  # ... whole-file scaling, not per window


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unsafe_checkpoint_is_refused_without_running_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path(%r).write_text('ran')" % str(tmp_path / "pwned"),))

    bad = tmp_path / "checkpoint.pth"
    with open(bad, "wb") as fh:
        pickle.dump(({"embedding_net.x": Evil()}, {}), fh)
    with pytest.raises(InputError, match="checkpoint.pth: cannot load the aiSFX checkpoint safely"):
        load_aisfx_weights(bad)
    assert not (tmp_path / "pwned").exists()
    torch.save(({"embedding_net.conv_block1.conv1.weight": torch.zeros(64, 1, 3, 3)}, {"ds": (0, 3)}), bad)
    assert list(load_aisfx_weights(bad)) == ["conv_block1.conv1.weight"]  # the allowlist covers what it should
    with pytest.raises(RuntimeError):
        AisfxNet().load_state_dict(load_aisfx_weights(bad))


class Stats(torch.nn.Module):
    def __init__(self, rate: int = 8000):
        super().__init__()
        self.sample_rate = rate  # declared rate travels inside the archive

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.mean(1), x.std(1), x.abs().max(1).values], dim=1)


def test_torchscript_round_trip(tmp_path):
    path = tmp_path / "m@v1.pt"  # an '@' in the file name is not a rate
    with pytest.warns(DeprecationWarning):
        torch.jit.script(Stats()).save(str(path))
    teacher = load_teacher(f"torchscript:{path}")
    assert (teacher.sample_rate, teacher.window_s, teacher.embedding_dim) == (8000, 1.0, 3)
    x = np.random.default_rng(0).normal(size=(4, 8000)).astype(np.float32)
    with torch.no_grad():
        assert np.allclose(teacher.embed_frames(x, batch_size=3), Stats()(torch.from_numpy(x)).numpy(), atol=1e-6)
    other = load_teacher(f"torchscript:{path}@16000")
    assert other.sample_rate == 16000 and other.id != teacher.id
    sf.write(tmp_path / "c.wav", 0.3 * np.sin(np.arange(12000) / 3.0).astype(np.float32), 8000)
    emb, times = embed_file(teacher, tmp_path / "c.wav", hop_s=0.5, center=True)
    assert emb.shape == (3, 3) and times.tolist() == [0.0, 0.5, 1.0]


def test_bad_specs_and_files(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(InputError, match="bad.pt: not a TorchScript archive"):
        load_teacher(f"torchscript:{tmp_path / 'bad.pt'}")
    with pytest.raises(InputError, match="missing.pt: TorchScript file not found"):
        load_teacher(f"torchscript:{tmp_path / 'missing.pt'}")
    with pytest.raises(ConfigError, match="unknown teacher spec"):
        load_teacher("vggish")
    with pytest.raises(ConfigError, match="keras-h5 needs a file"):
        load_teacher("keras-h5:")
    with pytest.raises(InputError, match="nowhere.h5: Keras .h5 file not found"):
        load_teacher(f"keras-h5:{tmp_path / 'nowhere.h5'}")


def test_teacher_checks_frame_shape():
    teacher = Teacher("t", torch.nn.Identity(), 8000, 1.0, 8000)
    with pytest.raises(ValueError, match=r"expected frames of shape \(n, 8000\)"):
        teacher.embed_frames(np.zeros((2, 100), np.float32))
    assert teacher.embed_frames(np.zeros((0, 8000), np.float32)).shape == (0, 8000)
