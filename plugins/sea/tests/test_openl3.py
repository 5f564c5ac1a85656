"""OpenL3 built from its architecture + a weights-only file in Keras's save_weights layout.

The official weights cannot be installed here, so the file is synthetic (random weights, the
real layer order and shapes): this checks structure, shapes and loading, not the numbers."""
import h5py
import numpy as np
import pytest
import torch

from workbench.api import ConfigError, InputError
from workbench_sea.compute.openl3_net import layer_configs
from workbench_sea.compute.teachers import load_teacher


def write_weights(path, input_repr, drop_last=False):
    rng = np.random.default_rng(0)
    n_dft = 512 if input_repr == "linear" else 2048
    freqs, channels = n_dft // 2 + 1, 1
    layers = [c for c in layer_configs(input_repr, 512) if c["class_name"] != "InputLayer"]
    with h5py.File(path, "w") as f:
        names = []
        for i, layer in enumerate(layers):
            name = f"keras_layer_{i}"  # the file's own names differ from ours: matched by order
            g = f.create_group(name)
            names.append(name)
            cls, cfg = layer["class_name"], layer["config"]
            w = {}
            if cls in ("Spectrogram", "Melspectrogram"):
                w["real_kernels"] = rng.normal(size=(n_dft, 1, 1, freqs)) * 0.01
                w["imag_kernels"] = rng.normal(size=(n_dft, 1, 1, freqs)) * 0.01
                if cls == "Melspectrogram":
                    w["Variable"] = np.abs(rng.normal(size=(freqs, cfg["n_mels"])))
            elif cls == "Conv2D":
                out = 512 if cfg["name"].startswith(("conv4", "audio")) else {"1": 64, "2": 128, "3": 256}[cfg["name"][4]]
                w["kernel"] = rng.normal(size=(3, 3, channels, out)) * np.sqrt(2 / (9 * channels))
                w["bias"] = np.zeros(out)
                channels = out
            elif cls == "BatchNormalization":
                w = {"gamma": np.ones(channels), "beta": np.zeros(channels), "moving_mean": np.zeros(channels),
                     "moving_variance": np.ones(channels)}
            if drop_last and cfg["name"] == "audio_embedding_layer":
                w = {}
            for k, v in w.items():
                g.create_dataset(f"{name}/{k}:0", data=v.astype(np.float32))
            g.attrs["weight_names"] = [f"{name}/{k}:0".encode() for k in w]
        f.attrs["layer_names"] = [n.encode() for n in names]
    return path


@pytest.mark.parametrize("input_repr,size", [("mel128", 512), ("linear", 6144)])
def test_openl3_builds_and_embeds(tmp_path, input_repr, size):
    path = write_weights(tmp_path / f"openl3_audio_{input_repr}_music.h5", input_repr)
    teacher = load_teacher(f"openl3:{input_repr}/music/{size}@{path}")
    assert teacher.sample_rate == 48000 and teacher.window_s == 1.0
    params = sum(p.numel() for p in teacher.model.parameters())
    assert 4_400_000 < params < 4_800_000  # L3-Net audio: about 4.7 M
    emb = teacher.embed_frames(np.random.default_rng(1).normal(size=(1, 48000)).astype(np.float32) * 0.1)
    assert emb.shape == (1, size) and np.isfinite(emb).all()


def test_openl3_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="openl3 package is not installed"):
        load_teacher("openl3:mel256/music/512")
    with pytest.raises(ConfigError, match="expected"):
        load_teacher(f"openl3:mel64/music/512@{tmp_path / 'x.h5'}")
    short = write_weights(tmp_path / "short.h5", "mel256", drop_last=True)
    with pytest.raises(InputError, match="short.h5: holds weights for 16 layers; OpenL3 mel256 has 17"):
        load_teacher(f"openl3:mel256/env/512@{short}")
