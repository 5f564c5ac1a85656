"""An independent float64 evaluation of an L3-family Keras .h5 model, straight from its config and
weights in plain numpy: explicit framing and matrix products for kapre's STFT, a loop over kernel
offsets with einsum for each convolution, channels_last (H, W, C) arrays throughout, one example
at a time. It shares no code with the torch importer, so agreement checks both.

Also locates the shared reference model (never copied into the repository)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np

_REPO = Path(__file__).resolve().parents[3]
SHARED_CANDIDATES = (_REPO.parent / "shared", _REPO / "shared")
SEA64_NAME = "edgel3_sea_ust_audio_emb_64.h5"


def reference_model(name: str = SEA64_NAME) -> Path | None:
    for shared in SHARED_CANDIDATES:
        path = shared / "reference-models" / name
        if path.is_file():
            return path
    return None


def _arrays(root, name):
    out = {}
    if name in root:
        def grab(key, obj):
            if hasattr(obj, "shape"):
                out[key.split("/")[-1].split(":")[0]] = np.asarray(obj, dtype=np.float64)
        root[name].visititems(grab)
    return out


def _tf_same(n, k, s):
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _db(x):
    log = 10.0 * np.log10(np.maximum(x, 1e-10))
    return np.maximum(log - log.max(), -80.0)


def _stft_power(audio, cfg, w):
    n_dft, hop = w["real_kernels"].shape[0], cfg["n_hop"]
    if cfg.get("padding", "same") == "same":
        before, after = _tf_same(len(audio), n_dft, hop)
        audio = np.concatenate([np.zeros(before), audio, np.zeros(after)])
    count = (len(audio) - n_dft) // hop + 1
    frames = np.stack([audio[i * hop:i * hop + n_dft] for i in range(count)])  # (T, n_dft)
    re = frames @ w["real_kernels"].reshape(n_dft, -1)
    im = frames @ w["imag_kernels"].reshape(n_dft, -1)
    return re ** 2 + im ** 2  # (T, F)


def _conv(x, cfg, w):
    kernel = w["kernel"]  # (kh, kw, cin, cout)
    kh, kw = kernel.shape[:2]
    sh, sw = cfg.get("strides", [1, 1])
    if cfg.get("padding", "valid") == "same":
        (t, b), (l, r) = _tf_same(x.shape[0], kh, sh), _tf_same(x.shape[1], kw, sw)
        x = np.pad(x, ((t, b), (l, r), (0, 0)))
    oh, ow = (x.shape[0] - kh) // sh + 1, (x.shape[1] - kw) // sw + 1
    out = np.zeros((oh, ow, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]
            out += np.einsum("hwc,co->hwo", patch, kernel[i, j])
    return out + w["bias"] if cfg.get("use_bias", True) else out


def _act(x, name):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "linear":
        return x
    raise NotImplementedError(name)


def _maxpool(x, cfg):
    ph, pw = cfg["pool_size"]
    sh, sw = cfg.get("strides") or cfg["pool_size"]
    if cfg.get("padding", "valid") == "same":
        (t, b), (l, r) = _tf_same(x.shape[0], ph, sh), _tf_same(x.shape[1], pw, sw)
        x = np.pad(x, ((t, b), (l, r), (0, 0)), constant_values=-np.inf)
    oh, ow = (x.shape[0] - ph) // sh + 1, (x.shape[1] - pw) // sw + 1
    return np.stack([[x[i * sh:i * sh + ph, j * sw:j * sw + pw].max(axis=(0, 1)) for j in range(ow)] for i in range(oh)])


def evaluate(path, audio: np.ndarray) -> np.ndarray:
    """audio: (samples,) mono at the model's rate -> the model's output for it (float64)."""
    audio = np.asarray(audio, dtype=np.float64)
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"] if isinstance(config["config"], dict) else config["config"]
        root = f["model_weights"] if "model_weights" in f else f
        x = None
        for layer in layers:
            cls, cfg = layer["class_name"], layer["config"]
            w = _arrays(root, cfg["name"])
            if cls == "InputLayer" or cls == "Dropout":
                continue
            if cls in ("Melspectrogram", "Spectrogram"):
                assert cfg.get("image_data_format", "channels_last") == "channels_last"
                spec = _stft_power(audio, cfg, w)  # (T, F), power
                if cfg.get("power_spectrogram", 2.0) != 2.0:
                    spec = np.sqrt(spec) ** cfg["power_spectrogram"]
                if cfg.get("return_decibel_spectrogram", False):
                    spec = _db(spec)
                if cls == "Melspectrogram":
                    spec = spec @ w["Variable"]
                    if cfg.get("power_melgram", 1.0) != 2.0:
                        spec = np.sqrt(spec) ** cfg["power_melgram"]
                    if cfg.get("return_decibel_melgram", False):
                        spec = _db(spec)
                x = spec.T[:, :, None]  # (freq, time, 1)
            elif cls == "BatchNormalization":
                gamma, beta = w.get("gamma", 1.0), w.get("beta", 0.0)
                x = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * gamma + beta
            elif cls == "Conv2D":
                assert cfg.get("data_format", "channels_last") == "channels_last"
                x = _act(_conv(x, cfg, w), cfg.get("activation", "linear"))
            elif cls == "Activation":
                x = _act(x, cfg["activation"])
            elif cls == "MaxPooling2D":
                x = _maxpool(x, cfg)
            elif cls == "GlobalMaxPooling2D":
                x = x.max(axis=(0, 1))
            elif cls == "Flatten":
                x = x.reshape(-1)  # C-order over (H, W, C): Keras's channels_last order
            elif cls == "Dense":
                x = _act(x @ w["kernel"] + (w["bias"] if cfg.get("use_bias", True) else 0.0), cfg.get("activation", "linear"))
            else:
                raise NotImplementedError(cls)
    return x
