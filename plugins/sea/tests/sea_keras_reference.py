"""An independent float64 evaluation of an L3-family Keras .h5, straight from its config and
weights in plain numpy (explicit framing, im2col convolutions, NHWC throughout). It shares
no code with the torch importer, so agreement between the two checks both."""
from __future__ import annotations

import json
import math

import h5py
import numpy as np


def _w(f, name):
    out = {}
    if name in f["model_weights"]:
        f["model_weights"][name].visititems(
            lambda k, v: out.__setitem__(k.split("/")[-1].split(":")[0], np.asarray(v, dtype=np.float64)) if hasattr(v, "shape") else None)
    return out


def _pad_same(n, k, s):
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def evaluate(path, audio: np.ndarray) -> np.ndarray:
    """audio: (samples,) mono at the model's rate -> embedding (float64)."""
    with h5py.File(path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        x = None
        for layer in layers:
            cls, cfg = layer["class_name"], layer["config"]
            w = _w(f, cfg["name"])
            if cls == "InputLayer":
                continue
            if cls == "Melspectrogram":
                n_dft, hop = cfg["n_dft"], cfg["n_hop"]
                a, b = _pad_same(len(audio), n_dft, hop)
                sig = np.concatenate([np.zeros(a), audio.astype(np.float64), np.zeros(b)])
                n_frames = (len(sig) - n_dft) // hop + 1
                frames = np.stack([sig[i * hop:i * hop + n_dft] for i in range(n_frames)])  # (T, n_dft)
                re = frames @ w["real_kernels"].reshape(n_dft, -1)
                im = frames @ w["imag_kernels"].reshape(n_dft, -1)
                power = re ** 2 + im ** 2  # (T, F)
                mel = power @ w["Variable"]  # (T, M)
                if cfg["power_melgram"] != 2.0:
                    mel = np.sqrt(mel) ** cfg["power_melgram"]
                db = 10 * np.log10(np.maximum(mel, 1e-10))
                db = np.maximum(db - db.max(), -80.0)
                x = db.T[:, :, None]  # NHWC without batch: (mel, time, 1)
            elif cls == "BatchNormalization":
                x = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
            elif cls == "Conv2D":
                k = w["kernel"]  # (kh, kw, in, out)
                kh, kw = k.shape[:2]
                (t, bo), (l, r) = _pad_same(x.shape[0], kh, 1), _pad_same(x.shape[1], kw, 1)
                xp = np.pad(x, ((t, bo), (l, r), (0, 0)))
                h, wd = x.shape[:2]
                cols = np.stack([xp[i:i + h, j:j + wd, :] for i in range(kh) for j in range(kw)], axis=2)  # (h, w, kh*kw, in)
                x = np.einsum("hwpc,pco->hwo", cols, k.reshape(kh * kw, k.shape[2], k.shape[3])) + w["bias"]
                if cfg["activation"] == "relu":
                    x = np.maximum(x, 0)
            elif cls == "Activation":
                assert cfg["activation"] == "relu"
                x = np.maximum(x, 0)
            elif cls == "MaxPooling2D":
                ph, pw = cfg["pool_size"]
                h, wd = x.shape[0] // ph, x.shape[1] // pw
                x = x[:h * ph, :wd * pw].reshape(h, ph, wd, pw, -1).max(axis=(1, 3))
            elif cls == "Flatten":
                x = x.reshape(-1)
            else:
                raise NotImplementedError(cls)
    return x
