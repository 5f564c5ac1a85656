"""Tiny Keras-style .h5 files written with h5py, in the layout Keras 2 ``model.save`` uses:
a ``model_config`` JSON attribute and ``model_weights/<layer>/<layer>/<weight>:0`` datasets."""
from __future__ import annotations

import json

import h5py
import numpy as np


def write_keras_h5(path, layers, inbound=None, class_name="Model"):
    """layers: [(class_name, config, {weight: array})]; inbound: {layer: [sources]} overrides the chain."""
    cfg_layers, previous = [], None
    for cls, cfg, _ in layers:
        sources = (inbound or {}).get(cfg["name"], [previous] if previous else [])
        cfg_layers.append({"class_name": cls, "name": cfg["name"], "config": cfg,
                           "inbound_nodes": [[[s, 0, 0, {}] for s in sources]] if sources else []})
        previous = cfg["name"]
    config = {"class_name": class_name, "config": {"name": "model", "layers": cfg_layers}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [cfg["name"].encode() for _, cfg, _ in layers]
        for _, cfg, weights in layers:
            g = root.create_group(cfg["name"])
            names = []
            for key, value in weights.items():
                full = f"{cfg['name']}/{key}:0"
                g.create_dataset(full, data=np.asarray(value, dtype=np.float32))
                names.append(full.encode())
            g.attrs["weight_names"] = names
    return path


def small_audio_model(rng, data_format="channels_last", flatten_format=None, n_dft=64, n_hop=32, sr=4000,
                      samples=1024, n_mels=8):
    """Melspectrogram -> BN -> Conv2D(relu) -> MaxPool -> Flatten -> Dense, random weights (same draws
    for every layout). Keras's Flatten emits (H, W, C) order for channels_last tensors, and for
    channels_first tensors only when its own data_format is channels_first (it transposes first);
    otherwise (C, H, W). The Dense rows are permuted to match, so every variant computes one function."""
    from workbench_sea.compute.kapre_layers import mel_filterbank, stft_kernels

    re, im = stft_kernels(n_dft)
    mel = mel_filterbank(sr, n_dft, n_mels)
    conv_k = rng.normal(size=(3, 3, 1, 4)) * 0.3
    frames = samples // n_hop
    pooled = (n_mels // 2, frames // 2, 4)  # (H, W, C) after 2x2 pooling
    dense_k = rng.normal(size=(int(np.prod(pooled)), 5)) * 0.1
    if data_format == "channels_first" and flatten_format != "channels_first":  # rows in (C, H, W) order
        order = np.arange(dense_k.shape[0]).reshape(pooled).transpose(2, 0, 1).reshape(-1)
        dense_k = dense_k[order]
    bn_axis = -1 if data_format == "channels_last" else 1
    return [
        ("InputLayer", {"name": "input_1", "batch_input_shape": [None, 1, samples]}, {}),
        ("Melspectrogram", {"name": "mel", "n_dft": n_dft, "n_hop": n_hop, "padding": "same", "sr": sr, "n_mels": n_mels,
                            "power_spectrogram": 2.0, "return_decibel_spectrogram": False, "power_melgram": 1.0,
                            "return_decibel_melgram": True, "htk": True, "norm": 1, "image_data_format": data_format},
         {"real_kernels": re, "imag_kernels": im, "Variable": mel}),
        ("BatchNormalization", {"name": "bn", "axis": bn_axis, "epsilon": 1e-3},
         {"gamma": [1.3], "beta": [0.2], "moving_mean": [-30.0], "moving_variance": [200.0]}),
        ("Conv2D", {"name": "conv", "filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
                    "data_format": data_format, "activation": "relu", "use_bias": True},
         {"kernel": conv_k, "bias": rng.normal(size=4) * 0.1}),
        ("MaxPooling2D", {"name": "pool", "pool_size": [2, 2], "strides": [2, 2], "padding": "valid",
                          "data_format": data_format}, {}),
        ("Flatten", {"name": "flatten", **({"data_format": flatten_format} if flatten_format else {})}, {}),
        ("Dense", {"name": "dense", "units": 5, "activation": "linear", "use_bias": True},
         {"kernel": dense_k, "bias": rng.normal(size=5) * 0.1}),
    ]
