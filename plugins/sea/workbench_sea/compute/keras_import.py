"""Import an L3-family Keras model (.h5 saved with ``model.save``, so with its config) into torch.

No TensorFlow: h5py reads the ``model_config`` JSON attribute and the ``model_weights`` group,
and the same chain of layers is rebuilt in torch: kapre 0.1.4 Melspectrogram / Spectrogram
(with their stored DFT and mel kernels), Conv2D, BatchNormalization, Activation, MaxPooling2D,
AveragePooling2D, global pooling, Flatten, Dense, Dropout (identity).

Layouts: torch runs NCHW. A channels_last Keras tensor (H, W, C) and a channels_first one
(C, H, W) are both NCHW in torch, and kapre's output (freq, time, ch) or (ch, freq, time) is
(ch, freq, time) either way; the one place the layout shows is Flatten, whose element order
follows Keras's (so a Dense after it uses the stored kernel unchanged). A model that mixes the
two layouts is refused.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.api import InputError

from .kapre_layers import KapreSpectrogram, same_padding

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "linear": nn.Identity, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=1), "elu": nn.ELU, "softplus": nn.Softplus}
IDENTITY_LAYERS = ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization")


class SamePad2d(nn.Module):
    """TensorFlow 'same' padding for a 2-D window (the odd pixel goes after)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[2], self.kernel[0], self.stride[0])
        left, right = same_padding(x.shape[3], self.kernel[1], self.stride[1])
        return F.pad(x, (left, right, top, bottom), value=self.value)


class KerasBatchNorm(nn.Module):
    """Inference-mode BatchNormalization over the channel axis, with the model's epsilon."""

    def __init__(self, gamma: torch.Tensor, beta: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float):
        super().__init__()
        for name, value in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
            self.register_buffer(name, value)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = (self.gamma / torch.sqrt(self.var + self.eps)).view(shape)
        return (x - self.mean.view(shape)) * scale + self.beta.view(shape)


class KerasFlatten(nn.Module):
    """Flatten in Keras's element order: (H, W, C) when ``hwc``, else torch's own (C, H, W)."""

    def __init__(self, hwc: bool):
        super().__init__()
        self.hwc = hwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and self.hwc:
            x = x.permute(0, 2, 3, 1)
        return x.flatten(1)


class KerasModel(nn.Sequential):
    """The imported chain. Audio models take (batch, channels, samples)."""

    def __init__(self, layers: list[tuple[str, nn.Module]], input_shape: list[int | None],
                 sample_rate: int | None, source: str):
        super().__init__()
        for name, module in layers:
            self.add_module(name, module)
        self.input_shape, self.sample_rate, self.source = list(input_shape), sample_rate, source


# -- reading the file ------------------------------------------------------------------------
def read_layer_weights(group: Any) -> dict[str, np.ndarray]:
    """A layer's arrays by short name ('kernel', 'moving_mean', 'real_kernels', 'Variable', ...)."""
    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if hasattr(obj, "shape"):
            out[name.split("/")[-1].split(":")[0]] = np.asarray(obj)

    group.visititems(visit)
    return out


def layer_list(config: dict, path: Path) -> list[dict]:
    """The layers of a Sequential or functional Model config, checked to form a single chain."""
    if config.get("class_name") not in ("Model", "Functional", "Sequential"):
        raise InputError(path, f"model class {config.get('class_name')!r} is not supported (Model or Sequential)")
    inner = config["config"]
    layers = inner["layers"] if isinstance(inner, dict) else inner
    if config["class_name"] != "Sequential":
        previous = None
        for layer in layers:
            sources = _inbound_names(layer)
            if sources is None:
                continue  # a config format without old-style inbound nodes: trust the order
            if layer["class_name"] == "InputLayer":
                previous = layer["config"]["name"]
                continue
            if sources != [previous]:
                raise InputError(path, f"layer {layer['config']['name']!r} takes {sources or 'no input'}, not the "
                                 f"previous layer {previous!r}: only single-chain models can be imported")
            previous = layer["config"]["name"]
    return layers


def _inbound_names(layer: dict) -> list[str] | None:
    nodes = layer.get("inbound_nodes")
    if nodes is None:
        return None
    if not nodes:
        return []
    try:
        return [inbound[0] for node in nodes for inbound in node]
    except (TypeError, KeyError, IndexError):
        return None


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
        try:
            config = json.loads(fh.attrs["model_config"])
        except ValueError as exc:
            raise InputError(path, f"model_config is not valid JSON: {exc}") from None
        root = fh["model_weights"] if "model_weights" in fh else fh
        layers = layer_list(config, path)
        weights = {layer["config"]["name"]: read_layer_weights(root[layer["config"]["name"]])
                   for layer in layers if layer["config"]["name"] in root}
    return build_model(layers, weights, path)


# -- building the torch chain ----------------------------------------------------------------
def build_model(layer_cfgs: list[dict], weights: dict[str, dict[str, np.ndarray]], path: Path) -> KerasModel:
    """Torch chain for Keras layer configs; ``weights`` maps layer name -> its arrays by short name.

    A kapre layer without stored kernels gets kapre 0.1.4's standard ones (OpenL3's weight files
    from v0.4 on dropped them)."""
    modules: list[tuple[str, nn.Module]] = []
    input_shape: list[int | None] = []
    sample_rate: int | None = None
    layout: str | None = None  # 'channels_last' / 'channels_first' once a 2-D tensor exists

    def need(w: dict, key: str, name: str) -> torch.Tensor:
        if key not in w:
            raise InputError(path, f"layer {name!r} has no weight {key!r} (found: {', '.join(w) or 'none'})")
        return torch.from_numpy(np.asarray(w[key], dtype=np.float32))

    def check_layout(name: str, fmt: str) -> None:
        if layout is not None and fmt != layout:
            raise InputError(path, f"layer {name!r} is {fmt} after {layout} layers: mixed layouts are not supported")

    for i, layer in enumerate(layer_cfgs):
        cls, cfg = layer["class_name"], layer["config"]
        name = cfg["name"]
        w = weights.get(name, {})
        if i == 0 and "batch_input_shape" in cfg:
            input_shape = list(cfg["batch_input_shape"][1:])
        if cls == "InputLayer":
            continue
        if cls in ("Melspectrogram", "Spectrogram"):
            fmt = cfg.get("image_data_format", "channels_last")
            if fmt not in ("channels_last", "channels_first"):
                raise InputError(path, f"layer {name!r}: image_data_format {fmt!r} is not supported")
            check_layout(name, fmt)
            layout = fmt
            if cls == "Melspectrogram":
                sample_rate = int(cfg.get("sr", 22050))
                if "Variable" in w:
                    mel = need(w, "Variable", name)
                else:
                    from .kapre_layers import mel_filterbank

                    if not cfg.get("htk", False):
                        raise InputError(path, f"layer {name!r} stores no mel filters and uses the Slaney mel "
                                         "scale, which this importer cannot rebuild")
                    mel = torch.from_numpy(mel_filterbank(cfg.get("sr", 22050), cfg["n_dft"], cfg.get("n_mels", 128),
                                                          cfg.get("fmin", 0.0), cfg.get("fmax")))
            else:
                mel = None
            stored = "real_kernels" in w or "imag_kernels" in w
            modules.append((name, KapreSpectrogram(
                int(cfg.get("n_hop") or cfg.get("n_dft", 512) // 2),
                need(w, "real_kernels", name) if stored else None, need(w, "imag_kernels", name) if stored else None,
                n_dft=None if stored else int(cfg.get("n_dft", 512)), padding=cfg.get("padding", "same"),
                power_spectrogram=cfg.get("power_spectrogram", 2.0),
                return_decibel=cfg.get("return_decibel_spectrogram", False), freq2mel=mel,
                power_melgram=cfg.get("power_melgram", 1.0), return_decibel_melgram=cfg.get("return_decibel_melgram", False))))
        elif cls == "BatchNormalization":
            axis = cfg.get("axis", -1)
            axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
            wanted = (1,) if layout == "channels_first" else (-1, 3) if layout == "channels_last" else (-1, 1)
            if axis not in wanted:
                raise InputError(path, f"layer {name!r}: BatchNormalization over axis {axis} of a {layout or 'flat'} "
                                 "tensor is not supported (only the channel axis)")
            mean = need(w, "moving_mean", name)
            n = mean.shape[0]
            gamma = need(w, "gamma", name) if cfg.get("scale", True) else torch.ones(n)
            beta = need(w, "beta", name) if cfg.get("center", True) else torch.zeros(n)
            modules.append((name, KerasBatchNorm(gamma, beta, mean, need(w, "moving_variance", name),
                                                 cfg.get("epsilon", 1e-3))))
        elif cls == "Conv2D":
            fmt = cfg.get("data_format", "channels_last")
            check_layout(name, fmt)
            layout = fmt
            kernel = need(w, "kernel", name)  # (kh, kw, in, out)
            kernel_size, strides = tuple(cfg["kernel_size"]), tuple(cfg.get("strides", (1, 1)))
            dilation = tuple(cfg.get("dilation_rate", (1, 1)))
            conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel_size, stride=strides, dilation=dilation,
                             bias=cfg.get("use_bias", True))
            with torch.no_grad():
                conv.weight.copy_(kernel.permute(3, 2, 0, 1))
                if conv.bias is not None:
                    conv.bias.copy_(need(w, "bias", name))
            conv.requires_grad_(False)
            if cfg.get("padding", "valid") == "same":
                if dilation != (1, 1):
                    raise InputError(path, f"layer {name!r}: dilated 'same' convolutions are not supported")
                modules.append((f"{name}_pad", SamePad2d(kernel_size, strides)))
            elif cfg.get("padding", "valid") != "valid":
                raise InputError(path, f"layer {name!r}: padding {cfg['padding']!r} is not supported")
            modules.append((name, conv))
            _activation(modules, name, cfg, path)
        elif cls == "Activation":
            _activation(modules, name, cfg, path)
        elif cls in ("MaxPooling2D", "AveragePooling2D"):
            fmt = cfg.get("data_format", "channels_last")
            check_layout(name, fmt)
            layout = fmt
            pool = tuple(cfg["pool_size"])
            stride = tuple(cfg.get("strides") or pool)
            if cfg.get("padding", "valid") == "same":
                if cls == "AveragePooling2D":
                    raise InputError(path, f"layer {name!r}: 'same' average pooling is not supported")
                modules.append((f"{name}_pad", SamePad2d(pool, stride, float("-inf"))))
            modules.append((name, nn.MaxPool2d(pool, stride) if cls == "MaxPooling2D" else nn.AvgPool2d(pool, stride)))
        elif cls in ("GlobalMaxPooling2D", "GlobalAveragePooling2D"):
            check_layout(name, cfg.get("data_format", "channels_last"))
            pool = nn.AdaptiveMaxPool2d(1) if cls == "GlobalMaxPooling2D" else nn.AdaptiveAvgPool2d(1)
            modules.append((name, nn.Sequential(pool, nn.Flatten(1))))
            layout = None
        elif cls == "Flatten":
            # Keras flattens the tensor as stored, except that Flatten(data_format='channels_first')
            # first moves channels last; torch holds NCHW, so (H, W, C) order needs a permute.
            hwc = layout != "channels_first" or cfg.get("data_format") == "channels_first"
            modules.append((name, KerasFlatten(hwc)))
            layout = None
        elif cls == "Dense":
            kernel = need(w, "kernel", name)
            dense = nn.Linear(kernel.shape[0], kernel.shape[1], bias=cfg.get("use_bias", True))
            with torch.no_grad():
                dense.weight.copy_(kernel.T)
                if dense.bias is not None:
                    dense.bias.copy_(need(w, "bias", name))
            dense.requires_grad_(False)
            modules.append((name, dense))
            _activation(modules, name, cfg, path)
        elif cls in IDENTITY_LAYERS:
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
