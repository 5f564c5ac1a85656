"""OpenL3 audio (L3-Net) in torch: its fixed architecture plus the official Keras weights.

The openl3 package ships weights-only Keras files, ``openl3_audio_<repr>_<content>.h5``
(saved with ``save_weights``: no model config), so the architecture comes from here. By input
representation:

  linear   kapre Spectrogram, 512-point STFT, hop 242, 'valid', magnitude, decibels -> 257 x 197
  mel128   kapre Melspectrogram, 2048-point STFT, hop 242, 'same', 128 HTK mel bands,
           magnitude-like (power_melgram 1), decibels -> 128 x 199
  mel256   the same with 256 bands -> 256 x 199

then batch norm, four blocks of two 3x3 'same' convolutions (64, 128, 256, 512 filters), each
followed by batch norm and ReLU except the last, 'audio_embedding_layer'; 2x2 max pooling after
blocks 1-3; finally max pooling ('same') to 512 or 6144 values and Flatten. Input: 1 s at 48 kHz.

Weights are matched to layers in file order, as Keras's ``load_weights`` does. The v0.2 files
(openl3 0.3.x) hold 17 weighted layers, the first being the kapre front end with its kernels;
from openl3 0.4 on the front-end layer was deleted from the files (16 layers), and the kapre 0.1.4
kernels the network was trained with are rebuilt here (they are fixed, not trained).

Where the weights are looked up, first hit wins:
  1. ``openl3:<repr>/<content>/<size>@/path/to/file.h5`` (explicit file);
  2. ``$WORKBENCH_OPENL3_DIR/openl3_audio_<repr>_<content>.h5``;
  3. the installed ``openl3`` package's folder (where its setup put the files).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from workbench.api import ConfigError, InputError

from .keras_import import KerasModel, build_model, read_layer_weights

RATE = 48000
ENV_DIR = "WORKBENCH_OPENL3_DIR"
POOL = {"linear": {6144: (8, 8), 512: (32, 24)}, "mel128": {6144: (4, 8), 512: (16, 24)},
        "mel256": {6144: (8, 8), 512: (32, 24)}}
WEIGHTED = ("Spectrogram", "Melspectrogram", "BatchNormalization", "Conv2D")


def layer_configs(input_repr: str, embedding_size: int) -> list[dict]:
    """Keras-style layer configs of the network (the vocabulary the Keras importer reads)."""
    if input_repr == "linear":
        front = {"class_name": "Spectrogram", "config": {
            "name": "front", "n_dft": 512, "n_hop": 242, "padding": "valid", "power_spectrogram": 1.0,
            "return_decibel_spectrogram": True, "image_data_format": "channels_last"}}
    else:
        front = {"class_name": "Melspectrogram", "config": {
            "name": "front", "n_dft": 2048, "n_hop": 242, "padding": "same", "sr": RATE, "n_mels": int(input_repr[3:]),
            "fmin": 0.0, "fmax": RATE / 2, "htk": True, "norm": 1, "power_spectrogram": 2.0, "power_melgram": 1.0,
            "return_decibel_melgram": True, "image_data_format": "channels_last"}}
    layers = [{"class_name": "InputLayer", "config": {"name": "input", "batch_input_shape": [None, 1, RATE]}}, front,
              {"class_name": "BatchNormalization", "config": {"name": "bn0", "epsilon": 1e-3}}]
    for block, filters in enumerate((64, 128, 256, 512), start=1):
        for j in (1, 2):
            name = "audio_embedding_layer" if (block, j) == (4, 2) else f"conv{block}_{j}"
            layers.append({"class_name": "Conv2D", "config": {"name": name, "filters": filters, "kernel_size": [3, 3],
                                                               "strides": [1, 1], "padding": "same", "activation": "linear"}})
            if name != "audio_embedding_layer":
                layers += [{"class_name": "BatchNormalization", "config": {"name": f"bn{block}_{j}", "epsilon": 1e-3}},
                           {"class_name": "Activation", "config": {"name": f"relu{block}_{j}", "activation": "relu"}}]
        if block < 4:
            layers.append({"class_name": "MaxPooling2D", "config": {"name": f"pool{block}", "pool_size": [2, 2],
                                                                     "strides": [2, 2]}})
    pool = POOL[input_repr][embedding_size]
    layers += [{"class_name": "MaxPooling2D", "config": {"name": "embedding_pool", "pool_size": list(pool),
                                                          "strides": list(pool), "padding": "same"}},
               {"class_name": "Flatten", "config": {"name": "flatten"}}]
    return layers


def weights_file(input_repr: str, content_type: str) -> Path:
    name = f"openl3_audio_{input_repr}_{content_type}.h5"
    tried = []
    if os.environ.get(ENV_DIR):
        candidate = Path(os.environ[ENV_DIR]) / name
        if candidate.is_file():
            return candidate
        tried.append(f"${ENV_DIR} ({candidate}: not there)")
    else:
        tried.append(f"${ENV_DIR} (not set)")
    spec = importlib.util.find_spec("openl3")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / name
        if candidate.is_file():
            return candidate
        tried.append(f"the openl3 package ({candidate}: not there)")
    else:
        tried.append("the openl3 package (not installed: its setup downloads the weights, which this machine cannot do)")
    raise ConfigError(f"OpenL3 weights {name} not found; looked in {'; '.join(tried)}. Give the file as "
                      f"openl3:{input_repr}/{content_type}/<512|6144>@/path/to/{name} or put it in ${ENV_DIR}",
                      key="teacher")


def load_openl3(input_repr: str, content_type: str, embedding_size: int, path: Path | None = None) -> KerasModel:
    if input_repr not in POOL or content_type not in ("music", "env") or embedding_size not in (512, 6144):
        raise ConfigError(f"openl3:{input_repr}/{content_type}/{embedding_size}: expected "
                          "<linear|mel128|mel256>/<music|env>/<512|6144>", key="teacher")
    path = Path(path) if path else weights_file(input_repr, content_type)
    if not path.is_file():
        raise InputError(path, "OpenL3 weights file not found")
    import h5py

    layers = layer_configs(input_repr, embedding_size)
    ours = [c["config"]["name"] for c in layers if c["class_name"] in WEIGHTED]
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file: {exc}") from None
    with fh:
        root = fh["model_weights"] if "model_weights" in fh else fh
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in root.attrs.get("layer_names", [])]
        if not names:
            raise InputError(path, "no 'layer_names' attribute: not a Keras weights file")
        stored = [n for n in names if n in root and len(root[n].attrs.get("weight_names", [])) > 0]
        if len(stored) == len(ours) - 1:
            ours = ours[1:]  # openl3 >= 0.4 files: front end removed, kernels rebuilt
        elif len(stored) != len(ours):
            raise InputError(path, f"holds weights for {len(stored)} layers; OpenL3 {input_repr} has {len(ours)} "
                             f"(or {len(ours) - 1} without its front end)")
        weights = {mine: read_layer_weights(root[theirs]) for mine, theirs in zip(ours, stored)}
    _check_shapes(weights, input_repr, path)
    return build_model(layers, weights, path)


def _check_shapes(weights: dict, input_repr: str, path: Path) -> None:
    """Order matching is only safe if the shapes agree: say which layer does not."""
    channels = 1
    for name, w in weights.items():
        if name.startswith(("conv", "audio_embedding_layer")):
            kernel = w.get("kernel")
            if kernel is None or kernel.shape[:3] != (3, 3, channels):
                raise InputError(path, f"weights for OpenL3 {input_repr} layer {name} have shape "
                                 f"{None if kernel is None else kernel.shape}, expected (3, 3, {channels}, n)")
            channels = kernel.shape[3]
        elif name.startswith("bn"):
            mean = w.get("moving_mean")
            expected = 1 if name == "bn0" else channels
            if mean is None or mean.shape != (expected,):
                raise InputError(path, f"weights for OpenL3 {input_repr} layer {name}: batch norm of "
                                 f"{None if mean is None else mean.shape}, expected ({expected},)")
