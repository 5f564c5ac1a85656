"""Import an L3-family Keras model (.h5 saved with its model config) into torch, no TensorFlow.

Reads ``model_config`` and ``model_weights`` with h5py and builds the same sequential graph:
kapre Melspectrogram/Spectrogram front ends (with their stored DFT and mel kernels),
Conv2D, BatchNormalization, Activation, MaxPooling2D, Global pooling, Flatten, Dense.
Keras tensors are channels_last; torch runs NCHW, and Flatten permutes back so Dense
weights apply to the same element order as in Keras.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.api import InputError

from .kapre_layers import KapreSpectrogram, same_padding

ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "softmax": lambda: nn.Softmax(dim=1), "elu": nn.ELU}


class SamePad2d(nn.Module):
    """TensorFlow 'same' padding for a 2-D kernel/stride (asymmetric when the total is odd)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[2], self.kernel[0], self.stride[0])
        left, right = same_padding(x.shape[3], self.kernel[1], self.stride[1])
        return F.pad(x, (left, right, top, bottom), value=self.value)


class KerasBatchNorm(nn.Module):
    """Inference-mode BatchNormalization over the channel axis, with Keras's epsilon."""

    def __init__(self, gamma, beta, mean, var, eps: float):
        super().__init__()
        for name, value in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
            self.register_buffer(name, value)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = (self.gamma / torch.sqrt(self.var + self.eps)).view(shape)
        return (x - self.mean.view(shape)) * scale + self.beta.view(shape)


class ChannelsLastFlatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


class KerasModel(nn.Sequential):
    """The imported model; input (batch, channels, samples) for audio front ends."""

    def __init__(self, layers: list[tuple[str, nn.Module]], input_shape: list[int | None], sample_rate: int | None, source: str):
        super().__init__()
        for name, module in layers:
            self.add_module(name, module)
        self.input_shape, self.sample_rate, self.source = input_shape, sample_rate, source


def _weights(group: Any, layer: str, path: Path) -> dict[str, torch.Tensor]:
    if layer not in group:
        return {}
    out: dict[str, torch.Tensor] = {}

    def visit(name: str, obj: Any) -> None:
        if hasattr(obj, "shape"):
            key = name.split("/")[-1].split(":")[0]
            out[key] = torch.from_numpy(np.asarray(obj, dtype=np.float32))

    group[layer].visititems(visit)
    return out


def _need(w: dict, key: str, layer: str, path: Path) -> torch.Tensor:
    if key not in w:
        raise InputError(path, f"layer {layer!r} has no weight {key!r} (found: {', '.join(w) or 'none'})")
    return w[key]


def load_keras_h5(path: str | Path) -> KerasModel:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "Keras .h5 file not found")
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file: {exc}") from None
    with fh:
        if "model_config" not in fh.attrs:
            raise InputError(path, "has no model_config: saved with save_weights(), not save(); its architecture is unknown")
        config = json.loads(fh.attrs["model_config"])
        weights = fh["model_weights"] if "model_weights" in fh else fh
        layer_cfgs = config["config"]["layers"] if isinstance(config["config"], dict) else config["config"]
        return _build(layer_cfgs, weights, path)


def _build(layer_cfgs: list[dict], weights: Any, path: Path) -> KerasModel:
    modules: list[tuple[str, nn.Module]] = []
    input_shape: list[int | None] = []
    sample_rate = None
    for layer in layer_cfgs:
        cls, cfg = layer["class_name"], layer["config"]
        name = cfg["name"]
        w = _weights(weights, name, path)
        if cfg.get("data_format", "channels_last") != "channels_last" or cfg.get("image_data_format", "channels_last") != "channels_last":
            raise InputError(path, f"layer {name!r}: only channels_last models are supported")
        if cls == "InputLayer":
            input_shape = cfg["batch_input_shape"][1:]
            continue
        if cls in ("Melspectrogram", "Spectrogram"):
            sample_rate = cfg.get("sr", sample_rate)
            mel = _need(w, "Variable", name, path) if cls == "Melspectrogram" else None
            modules.append((name, KapreSpectrogram(
                _need(w, "real_kernels", name, path), _need(w, "imag_kernels", name, path), cfg["n_hop"],
                cfg.get("padding", "same"), cfg.get("power_spectrogram", 2.0), cfg.get("return_decibel_spectrogram", False),
                mel, cfg.get("power_melgram", 1.0), cfg.get("return_decibel_melgram", False))))
            # kapre yields (batch, ch, freq, time); Keras channels_last sees (freq, time, ch):
            # as NCHW that is exactly (batch, ch, freq, time), so nothing to permute.
        elif cls == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, 3):
                raise InputError(path, f"layer {name!r}: BatchNormalization over axis {cfg['axis']} is not supported")
            n = _need(w, "moving_mean", name, path).shape[0]
            gamma = w.get("gamma", torch.ones(n)) if cfg.get("scale", True) else torch.ones(n)
            beta = w.get("beta", torch.zeros(n)) if cfg.get("center", True) else torch.zeros(n)
            modules.append((name, KerasBatchNorm(gamma, beta, w["moving_mean"], _need(w, "moving_variance", name, path),
                                                 cfg.get("epsilon", 1e-3))))
        elif cls == "Conv2D":
            kernel = _need(w, "kernel", name, path)  # (kh, kw, in, out)
            conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], tuple(cfg["kernel_size"]), stride=tuple(cfg["strides"]),
                             dilation=tuple(cfg.get("dilation_rate", (1, 1))), bias=cfg.get("use_bias", True))
            with torch.no_grad():
                conv.weight.copy_(kernel.permute(3, 2, 0, 1))
                if conv.bias is not None:
                    conv.bias.copy_(_need(w, "bias", name, path))
            if cfg["padding"] == "same":
                if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
                    raise InputError(path, f"layer {name!r}: dilated 'same' convolutions are not supported")
                modules.append((f"{name}_pad", SamePad2d(tuple(cfg["kernel_size"]), tuple(cfg["strides"]))))
            modules.append((name, conv))
            _activation(modules, name, cfg, path)
        elif cls == "Activation":
            _activation(modules, name, cfg, path)
        elif cls in ("MaxPooling2D", "AveragePooling2D"):
            pool, stride = tuple(cfg["pool_size"]), tuple(cfg.get("strides") or cfg["pool_size"])
            if cfg.get("padding", "valid") == "same":
                fill = float("-inf") if cls == "MaxPooling2D" else 0.0
                if cls == "AveragePooling2D":
                    raise InputError(path, f"layer {name!r}: 'same' average pooling is not supported")
                modules.append((f"{name}_pad", SamePad2d(pool, stride, fill)))
            modules.append((name, nn.MaxPool2d(pool, stride) if cls == "MaxPooling2D" else nn.AvgPool2d(pool, stride)))
        elif cls == "GlobalMaxPooling2D":
            modules.append((name, nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(1))))
        elif cls == "GlobalAveragePooling2D":
            modules.append((name, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))))
        elif cls == "Flatten":
            modules.append((name, ChannelsLastFlatten()))
        elif cls == "Dense":
            kernel = _need(w, "kernel", name, path)
            dense = nn.Linear(kernel.shape[0], kernel.shape[1], bias=cfg.get("use_bias", True))
            with torch.no_grad():
                dense.weight.copy_(kernel.T)
                if dense.bias is not None:
                    dense.bias.copy_(_need(w, "bias", name, path))
            modules.append((name, dense))
            _activation(modules, name, cfg, path)
        elif cls in ("Dropout", "InputSpec"):
            continue  # inference: identity
        else:
            raise InputError(path, f"layer {name!r} of class {cls} is not supported by the Keras importer")
    return KerasModel(modules, input_shape, sample_rate, str(path)).eval()


def _activation(modules: list, name: str, cfg: dict, path: Path) -> None:
    act = cfg.get("activation", "linear")
    if act not in ACTIVATIONS:
        raise InputError(path, f"layer {name!r}: activation {act!r} is not supported")
    if act != "linear":
        modules.append((f"{name}_act", ACTIVATIONS[act]()))
