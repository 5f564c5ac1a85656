"""OpenL3 built from its architecture + weights-only Keras files (save_weights layout).

The official weights cannot be installed here, so the files are synthetic: random weights in the
real layer order and shapes, in both layouts openl3 shipped (v0.2 files with the kapre front end's
kernels, 17 weighted layers; openl3 >= 0.4 files without it, 16). This checks the architecture,
shapes, loading and the rebuilt front end, not the published numbers."""
import h5py
import numpy as np
import pytest
import torch

from workbench.api import ConfigError, InputError
from workbench_sea.compute.kapre_layers import mel_filterbank, stft_kernels
from workbench_sea.compute.openl3_net import ENV_DIR, layer_configs
from workbench_sea.compute.teachers import load_teacher


def write_weights(path, input_repr, front=True, front_kernels="standard", drop=None, seed=0):
    rng = np.random.default_rng(seed)
    n_dft = 512 if input_repr == "linear" else 2048
    channels = 1
    layers = [c for c in layer_configs(input_repr, 512) if c["class_name"] != "InputLayer"]
    if not front:
        layers = layers[1:]
    with h5py.File(path, "w") as f:
        names = []
        for i, layer in enumerate(layers):
            name = f"keras_layer_{i}"  # the file's own names differ from ours: matched by order
            names.append(name)
            g = f.create_group(name)
            cls, cfg = layer["class_name"], layer["config"]
            w = {}
            if cls in ("Spectrogram", "Melspectrogram"):
                if front_kernels == "standard":
                    re, im = stft_kernels(n_dft)
                else:
                    re, im = (rng.normal(size=(n_dft, 1, 1, n_dft // 2 + 1)) * 0.01 for _ in range(2))
                w = {"real_kernels": re, "imag_kernels": im}
                if cls == "Melspectrogram":
                    w["Variable"] = mel_filterbank(48000, n_dft, cfg["n_mels"])
            elif cls == "Conv2D":
                out = cfg["filters"]
                w = {"kernel": rng.normal(size=(3, 3, channels, out)) * np.sqrt(2 / (9 * channels)),
                     "bias": rng.normal(size=out) * 0.01}
                channels = out
            elif cls == "BatchNormalization":
                w = {"gamma": rng.uniform(0.5, 1.5, channels), "beta": rng.normal(size=channels) * 0.1,
                     "moving_mean": (-40.0 if cfg["name"] == "bn0" else 0.0) + rng.normal(size=channels) * 0.1,
                     "moving_variance": (300.0 if cfg["name"] == "bn0" else 1.0) * rng.uniform(0.5, 1.5, channels)}
            if cfg["name"] == drop:
                w = {}
            for k, v in w.items():
                g.create_dataset(f"{name}/{k}:0", data=np.asarray(v, dtype=np.float32))
            g.attrs["weight_names"] = [f"{name}/{k}:0".encode() for k in w]
        f.attrs["layer_names"] = [n.encode() for n in names]
    return path


def audio(n=1):
    return (np.random.default_rng(1).normal(size=(n, 48000)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("input_repr,size,front", [("mel128", 512, True), ("linear", 6144, False),
                                                   ("mel256", 6144, False)])
def test_openl3_builds_and_embeds(tmp_path, input_repr, size, front):
    path = write_weights(tmp_path / f"openl3_audio_{input_repr}_music.h5", input_repr, front=front)
    teacher = load_teacher(f"openl3:{input_repr}/music/{size}@{path}")
    assert (teacher.sample_rate, teacher.window_s, teacher.embedding_dim) == (48000, 1.0, size)
    assert teacher.id.startswith(f"openl3:{input_repr}/music/{size}:")
    params = sum(p.numel() for p in teacher.model.parameters())
    assert params == 4_684_224  # the 8 convolutions of L3-Net's audio branch (~4.7 M)
    front_end = teacher.model.inner[0]
    with torch.no_grad():
        spec = front_end(torch.from_numpy(audio()).view(1, 1, -1))
    bins = {"linear": 257, "mel128": 128, "mel256": 256}[input_repr]
    assert spec.shape == (1, 1, bins, 197 if input_repr == "linear" else 199)  # openl3's documented input sizes
    emb = teacher.embed_frames(audio())
    assert emb.shape == (1, size) and np.isfinite(emb).all()


def test_rebuilt_front_end_equals_the_stored_one(tmp_path):
    """A 16-layer (openl3 >= 0.4) file and the same weights with kapre's standard kernels stored
    (17 layers) give the same embedding: the FFT path equals the stored-kernel convolution."""
    with_front = write_weights(tmp_path / "v02.h5", "mel128", front=True)
    without = write_weights(tmp_path / "v04.h5", "mel128", front=False)
    a = load_teacher(f"openl3:mel128/env/512@{with_front}").embed_frames(audio())
    b = load_teacher(f"openl3:mel128/env/512@{without}").embed_frames(audio())
    assert np.allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_openl3_weights_lookup_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DIR, raising=False)
    with pytest.raises(ConfigError, match="openl3 package") as err:
        load_teacher("openl3:mel256/music/512")
    assert ENV_DIR in str(err.value) and "openl3_audio_mel256_music.h5" in str(err.value)
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    write_weights(tmp_path / "openl3_audio_linear_env.h5", "linear", front=False)
    assert load_teacher("openl3:linear/env/512").embedding_dim == 512  # found through the variable
    with pytest.raises(ConfigError, match="expected"):
        load_teacher(f"openl3:mel64/music/512@{tmp_path / 'x.h5'}")
    short = write_weights(tmp_path / "short.h5", "mel256", front=False, drop="audio_embedding_layer")
    with pytest.raises(InputError, match="short.h5: holds weights for 15 layers; OpenL3 mel256 has 17 "):
        load_teacher(f"openl3:mel256/env/512@{short}")
    wrong = write_weights(tmp_path / "wrong.h5", "mel128", front=False)
    with h5py.File(wrong, "a") as f:  # a kernel of the wrong shape: order matching must not go unnoticed
        del f["keras_layer_4/keras_layer_4/kernel:0"]
        f.create_dataset("keras_layer_4/keras_layer_4/kernel:0", data=np.zeros((3, 3, 32, 64), np.float32))
    with pytest.raises(InputError, match="wrong.h5: weights for OpenL3 mel128 layer conv1_2 have shape"):
        load_teacher(f"openl3:mel128/env/512@{wrong}")
