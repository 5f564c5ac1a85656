"""Teachers chosen by a spec string; each embeds fixed-length windows of mono audio.

  aisfx                        the pretrained sound-effects CNN carried by the aisfx wheel (512-d)
  keras-h5:<path>              an L3-family Keras model with its config (e.g. edgel3's SEA students)
  torchscript:<path>[@<rate>]  any TorchScript embedding model; rate defaults to its `sample_rate`
                               attribute, else 16000
  openl3:<repr>/<content>/<n>[@<weights.h5>]  OpenL3 (linear|mel128|mel256, music|env, 512|6144), weights
                               from the installed openl3 package or the given file
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.api import ConfigError, InputError


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass
class Teacher:
    id: str  # stable: changes when the weights or the recipe change (cache key)
    model: nn.Module  # (batch, samples) -> (batch, dim)
    sample_rate: int
    window_s: float
    embedding_dim: int

    @torch.no_grad()
    def embed_frames(self, frames: np.ndarray | torch.Tensor, batch_size: int = 32) -> np.ndarray:
        x = torch.as_tensor(np.asarray(frames, dtype=np.float32))
        out = [self.model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.embedding_dim), np.float32)


def load_teacher(spec: str) -> Teacher:
    kind, _, arg = spec.partition(":")
    if kind == "aisfx":
        return aisfx_teacher()
    if kind == "keras-h5":
        return keras_teacher(Path(arg))
    if kind == "torchscript":
        path, _, rate = arg.partition("@")
        return torchscript_teacher(Path(path), int(rate) if rate else None)
    if kind == "openl3":
        return openl3_teacher(arg)
    raise ConfigError(f"unknown teacher spec {spec!r} (aisfx, keras-h5:<path>, torchscript:<path>[@rate])", key="teacher")


# -- keras-h5 -------------------------------------------------------------------------------
class _ChannelAxis(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.unsqueeze(1))


def keras_teacher(path: Path) -> Teacher:
    from .keras_import import load_keras_h5

    model = load_keras_h5(path)
    samples = model.input_shape[-1]
    if not model.sample_rate or not samples:
        raise InputError(path, "the model declares no audio sample rate or input length (no kapre front end?)")
    with torch.no_grad():
        dim = model(torch.zeros(1, 1, samples)).shape[-1]
    return Teacher(f"keras-h5:{_file_hash(path)}", _ChannelAxis(model).eval(), int(model.sample_rate),
                   samples / model.sample_rate, int(dim))


def openl3_teacher(arg: str) -> Teacher:
    from .openl3_net import RATE, load_openl3

    triple, _, weights = arg.partition("@")
    parts = (triple or "mel256/music/512").split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ConfigError(f"openl3:{arg}: expected openl3:<repr>/<content>/<size>[@weights.h5]", key="teacher")
    model = load_openl3(parts[0], parts[1], int(parts[2]), Path(weights) if weights else None)
    return Teacher(f"openl3:{triple}:{_file_hash(Path(model.source))}", _ChannelAxis(model).eval(), RATE, 1.0, int(parts[2]))


# -- torchscript ----------------------------------------------------------------------------
def torchscript_teacher(path: Path, rate: int | None) -> Teacher:
    if not path.is_file():
        raise InputError(path, "TorchScript file not found")
    try:
        # A TorchScript archive holds code in TorchScript's own restricted language and tensors;
        # loading it runs no Python pickle of arbitrary objects.
        model = torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as exc:
        raise InputError(path, f"not a TorchScript archive: {str(exc).splitlines()[0]}") from None
    rate = rate or int(getattr(model, "sample_rate", 16000))
    window_s = float(getattr(model, "window_s", 1.0))
    with torch.no_grad():
        dim = model(torch.zeros(1, int(rate * window_s))).shape[-1]
    return Teacher(f"torchscript:{_file_hash(path)}@{rate}", model, rate, window_s, int(dim))


# -- aiSFX ----------------------------------------------------------------------------------
AISFX_RATE, AISFX_NFFT, AISFX_HOP, AISFX_MELS, AISFX_BLOCK = 44100, 2048, 1024, 96, 100
AISFX_NORM_MAX = 9.457798957824707  # min-max scale used in training (min 0)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, pool)


class AisfxNet(nn.Module):
    """aiSFX's embedding CNN: four double-conv blocks (64..512), mean over frequency, max over time."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.conv_block1 = _ConvBlock(1, width)
        self.conv_block2 = _ConvBlock(width, width * 2)
        self.conv_block3 = _ConvBlock(width * 2, width * 4)
        self.conv_block4 = _ConvBlock(width * 4, width * 8)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # (batch, time, mel)
        x = spec.unsqueeze(1)
        for block, pool in ((self.conv_block1, (2, 2)), (self.conv_block2, (2, 2)), (self.conv_block3, (2, 2)),
                            (self.conv_block4, (1, 1))):
            x = block(x, pool)
        return x.mean(dim=3).max(dim=2).values


class AisfxFrontEnd(nn.Module):
    """Peak-normalised audio -> 96-band HTK mel power (L1-normalised filters), log10(1e4·x + 1), scaled."""

    def __init__(self):
        super().__init__()
        import torchaudio.functional as AF

        fb = AF.melscale_fbanks(AISFX_NFFT // 2 + 1, 0.0, AISFX_RATE / 2, AISFX_MELS, AISFX_RATE, norm=None, mel_scale="htk")
        self.register_buffer("fb", fb / fb.sum(dim=0, keepdim=True).clamp(min=1e-12))
        self.register_buffer("window", torch.hann_window(AISFX_NFFT))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # (batch, samples) -> (batch, frames, mel)
        peak = audio.abs().amax(dim=1, keepdim=True)
        audio = audio / torch.where(peak > 0, peak, torch.ones_like(peak))
        spec = torch.stft(audio, AISFX_NFFT, AISFX_HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True).abs() ** 2
        mel = torch.einsum("bft,fm->btm", spec, self.fb)
        return torch.log10(mel * 10000.0 + 1.0) / AISFX_NORM_MAX


class _AisfxModel(nn.Module):
    def __init__(self, net: AisfxNet):
        super().__init__()
        self.front, self.net = AisfxFrontEnd(), net

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(self.front(audio)[:, :AISFX_BLOCK])


def aisfx_checkpoint() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or spec.origin is None:
        raise ConfigError("the aisfx package is not installed: pip install --no-deps aisfx==0.1.2", key="teacher")
    return Path(spec.origin).parent / "models" / "checkpoint.pth"


def load_aisfx_weights(path: Path) -> dict[str, torch.Tensor]:
    """weights_only=True with the narrowest allowlist this checkpoint needs (numpy scalars in its
    dataset table); nothing else can be unpickled."""
    from numpy._core.multiarray import scalar

    allow: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), np.dtype,
                        type(np.dtype("int64")), type(np.dtype("float64")), type(np.dtype("float32"))]
    try:
        with torch.serialization.safe_globals(allow):
            weights, _datasets = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to read it safely is a named error
        raise InputError(path, f"cannot load the aiSFX checkpoint safely: {str(exc).splitlines()[0]}") from None
    prefix = "embedding_net."
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def aisfx_teacher() -> Teacher:
    path = aisfx_checkpoint()
    net = AisfxNet()
    net.load_state_dict(load_aisfx_weights(path))
    window_s = (AISFX_BLOCK - 1) * AISFX_HOP / AISFX_RATE  # 100 centred frames
    return Teacher(f"aisfx:{_file_hash(path)}", _AisfxModel(net).eval(), AISFX_RATE, round(window_s, 4), 512)


def embed_file(teacher: Teacher, path: str | Path, hop_s: float = 0.1, center: bool = True,
               batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    from .audio_io import frame_audio, load_audio

    audio = load_audio(path, teacher.sample_rate)
    frames, times = frame_audio(audio, teacher.sample_rate, teacher.window_s, hop_s, center)
    return teacher.embed_frames(frames, batch_size), times
