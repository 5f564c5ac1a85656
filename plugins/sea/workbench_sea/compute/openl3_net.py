"""OpenL3 audio (L3-Net) built in torch from its known architecture, with the official weights.

The openl3 package ships weights-only Keras files (``openl3_audio_<repr>_<content>.h5``, saved
with ``save_weights``: no model config). The architecture is fixed by the input
representation: a kapre front end (linear: 512-point STFT, 'valid'; mel128/mel256: 2048-point
STFT to 128/256 HTK mel bands, 'same'; hop 242 at 48 kHz, decibels), then four blocks of
two 3x3 convolutions with batch norm (64, 128, 256, 512 filters; 2x2 max pooling between
blocks), the last convolution being 'audio_embedding_layer', then max pooling to 512 or 6144
values. Weights are matched to layers in the file's order, as Keras's load_weights does.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from workbench.api import ConfigError, InputError

from .keras_import import KerasModel, _build

RATE = 48000
POOL = {"linear": {6144: (8, 8), 512: (32, 24)}, "mel128": {6144: (4, 8), 512: (16, 24)},
        "mel256": {6144: (8, 8), 512: (32, 24)}}


def layer_configs(input_repr: str, embedding_size: int) -> list[dict]:
    """Keras-style layer configs of the network (the same vocabulary the importer reads)."""
    if input_repr == "linear":
        front = {"class_name": "Spectrogram", "config": {"name": "front", "n_dft": 512, "n_hop": 242, "padding": "valid",
                                                         "power_spectrogram": 1.0, "return_decibel_spectrogram": True}}
    else:
        front = {"class_name": "Melspectrogram", "config": {
            "name": "front", "n_dft": 2048, "n_hop": 242, "padding": "same", "sr": RATE, "power_spectrogram": 2.0,
            "power_melgram": 1.0, "return_decibel_melgram": True, "n_mels": int(input_repr[3:])}}
    layers = [{"class_name": "InputLayer", "config": {"name": "input", "batch_input_shape": [None, 1, RATE]}}, front,
              {"class_name": "BatchNormalization", "config": {"name": "bn0", "epsilon": 1e-3}}]
    for block, filters in enumerate((64, 128, 256, 512), start=1):
        for j in (1, 2):
            name = "audio_embedding_layer" if (block, j) == (4, 2) else f"conv{block}_{j}"
            layers.append({"class_name": "Conv2D", "config": {"name": name, "kernel_size": [3, 3], "strides": [1, 1],
                                                               "padding": "same", "activation": "linear"}})
            if name != "audio_embedding_layer":
                layers += [{"class_name": "BatchNormalization", "config": {"name": f"bn{block}_{j}", "epsilon": 1e-3}},
                           {"class_name": "Activation", "config": {"name": f"relu{block}_{j}", "activation": "relu"}}]
        if block < 4:
            layers.append({"class_name": "MaxPooling2D", "config": {"name": f"pool{block}", "pool_size": [2, 2], "strides": [2, 2]}})
    pool = POOL[input_repr][embedding_size]
    layers += [{"class_name": "MaxPooling2D", "config": {"name": "embedding_pool", "pool_size": list(pool),
                                                          "strides": list(pool), "padding": "same"}},
               {"class_name": "Flatten", "config": {"name": "flatten"}}]
    return layers


def weights_file(input_repr: str, content_type: str) -> Path:
    spec = importlib.util.find_spec("openl3")
    name = f"openl3_audio_{input_repr}_{content_type}.h5"
    if spec is None or spec.origin is None:
        raise ConfigError(f"OpenL3 weights {name} not found: the openl3 package is not installed (its setup "
                          "downloads the weights, which this machine cannot do); give the file as "
                          f"openl3:{input_repr}/{content_type}/<size>@/path/to/{name}", key="teacher")
    return Path(spec.origin).parent / name


def load_openl3(input_repr: str, content_type: str, embedding_size: int, path: Path | None = None) -> KerasModel:
    if input_repr not in POOL or content_type not in ("music", "env") or embedding_size not in (512, 6144):
        raise ConfigError(f"openl3:{input_repr}/{content_type}/{embedding_size}: expected "
                          "<linear|mel128|mel256>/<music|env>/<512|6144>", key="teacher")
    path = Path(path) if path else weights_file(input_repr, content_type)
    if not path.is_file():
        raise InputError(path, "OpenL3 weights file not found")
    import h5py

    layers = layer_configs(input_repr, embedding_size)
    with_weights = [c["config"]["name"] for c in layers if c["class_name"] in ("Spectrogram", "Melspectrogram",
                                                                                "BatchNormalization", "Conv2D")]
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file: {exc}") from None
    with fh:
        root = fh["model_weights"] if "model_weights" in fh else fh
        names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs.get("layer_names", [])]
        stored = [n for n in names if len(root[n].attrs.get("weight_names", [])) > 0]
        if len(stored) != len(with_weights):
            raise InputError(path, f"holds weights for {len(stored)} layers; OpenL3 {input_repr} has {len(with_weights)}")
        return _build(layers, {ours: root[theirs] for ours, theirs in zip(with_weights, stored)}, path)
