"""Teachers chosen by a spec string; each embeds fixed-length windows of mono audio.

  aisfx                        the pretrained sound-effects CNN in the aisfx wheel (512-d, 44.1 kHz,
                               ~2.3 s windows = 100 spectrogram frames)
  keras-h5:<path>              an L3-family Keras model saved with its config (edgel3's SEA students)
  torchscript:<path>[@<rate>]  any TorchScript embedding model (batch, samples) -> (batch, dims); the
                               rate defaults to the model's ``sample_rate`` attribute, else 16000 Hz,
                               the window to its ``window_s`` attribute, else 1 s
  openl3[:<repr>/<content>/<size>][@<weights.h5>]
                               OpenL3 (linear|mel128|mel256, music|env, 512|6144; default
                               mel256/music/512), 48 kHz, 1 s windows; weights from the given file,
                               $WORKBENCH_OPENL3_DIR or the installed openl3 package (see openl3_net)

A teacher is an ``nn.Module`` with ``id`` (stable; changes with the weights file's content or
the input recipe, so it keys the embedding cache), ``sample_rate``, ``window_s``,
``embedding_dim``, ``model`` ((batch, samples) -> (batch, dims)), ``prepare`` (file-level
preprocessing applied before framing, e.g. aiSFX's peak normalisation) and ``embed_frames``.
``embed_file`` does load -> prepare -> frame -> batch.

Safety: weights are read with h5py (arrays only), ``torch.load(weights_only=True)`` with a
minimal allowlist (aiSFX), or ``torch.jit.load`` (see ``torchscript_teacher``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.api import ConfigError, InputError

DEFAULT_OPENL3 = "mel256/music/512"


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def unchanged(audio: np.ndarray) -> np.ndarray:
    return audio


class Teacher(nn.Module):
    def __init__(self, id: str, model: nn.Module, sample_rate: int, window_s: float, embedding_dim: int,  # noqa: A002
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None):
        super().__init__()
        self.id, self.model = id, model
        self.sample_rate, self.window_s, self.embedding_dim = int(sample_rate), float(window_s), int(embedding_dim)
        self.prepare = prepare or unchanged

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames)

    @torch.no_grad()
    def embed_frames(self, frames: np.ndarray | torch.Tensor, batch_size: int = 32) -> np.ndarray:
        """(n, window_samples) float audio -> (n, embedding_dim) float32."""
        x = torch.as_tensor(np.asarray(frames, dtype=np.float32))
        if x.dim() != 2 or x.shape[1] != self.window_samples:
            raise ValueError(f"{self.id}: expected frames of shape (n, {self.window_samples}), got {tuple(x.shape)}")
        self.model.eval()
        out = [self.model(x[i:i + batch_size]).float() for i in range(0, len(x), max(int(batch_size), 1))]
        return torch.cat(out).numpy() if out else np.zeros((0, self.embedding_dim), np.float32)

    def embed_audio(self, audio: np.ndarray, hop_s: float = 0.1, center: bool = True,
                    batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Mono audio at ``sample_rate`` -> (embeddings [frames, dims], timestamps [frames] s)."""
        from .audio_io import frame_audio

        frames, times = frame_audio(self.prepare(audio), self.sample_rate, self.window_s, hop_s, center)
        return self.embed_frames(frames, batch_size), times

    def extra_repr(self) -> str:
        return f"id={self.id!r}, sample_rate={self.sample_rate}, window_s={self.window_s}, dim={self.embedding_dim}"


def embed_file(teacher: Teacher, path: str | Path, hop_s: float = 0.1, center: bool = True,
               batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Load (validated, mono, resampled), prepare, frame and embed one file."""
    from .audio_io import load_audio

    return teacher.embed_audio(load_audio(path, teacher.sample_rate), hop_s, center, batch_size)


def load_teacher(spec: str) -> Teacher:
    kind, _, arg = spec.strip().partition(":")
    kind, _, at = kind.partition("@")  # "openl3@/path.h5" (default triple) or "aisfx"
    if kind == "aisfx":
        if arg or at:
            raise ConfigError(f"teacher {spec!r}: aisfx takes no arguments", key="teacher")
        return aisfx_teacher()
    if kind == "keras-h5":
        if not arg:
            raise ConfigError("keras-h5 needs a file: keras-h5:<path/to/model.h5>", key="teacher")
        return keras_teacher(Path(arg).expanduser())
    if kind == "torchscript":
        path, sep, rate = arg.rpartition("@")
        if not sep or not rate.isdigit():  # no '@<digits>' suffix: the whole argument is the file
            path, rate = arg, ""
        if not path:
            raise ConfigError("torchscript needs a file: torchscript:<path>[@<sample rate>]", key="teacher")
        return torchscript_teacher(Path(path).expanduser(), int(rate) if rate else None)
    if kind == "openl3":
        return openl3_teacher(arg if arg else (f"{DEFAULT_OPENL3}@{at}" if at else ""))
    raise ConfigError(f"unknown teacher spec {spec!r} (aisfx, openl3:<repr>/<content>/<size>[@weights.h5], "
                      "keras-h5:<path>, torchscript:<path>[@rate])", key="teacher")


# -- Keras (.h5 with its config) and OpenL3 -------------------------------------------------
class _ChannelAxis(nn.Module):
    """(batch, samples) -> the Keras audio models' (batch, 1, samples)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.unsqueeze(1))


def keras_teacher(path: Path) -> Teacher:
    from .keras_import import load_keras_h5

    model = load_keras_h5(path)
    shape = model.input_shape
    if not model.sample_rate or len(shape) != 2 or not shape[-1] or shape[0] != 1:
        raise InputError(path, f"not a mono audio embedding model: input {shape}, sample rate "
                         f"{model.sample_rate or 'undeclared (no kapre Melspectrogram front end)'}")
    samples = int(shape[-1])
    with torch.no_grad():
        out = model(torch.zeros(1, 1, samples))
    if out.dim() != 2:
        raise InputError(path, f"the model's output has shape {tuple(out.shape)}, not (batch, dims)")
    return Teacher(f"keras-h5:{file_digest(path)}", _ChannelAxis(model).eval(), int(model.sample_rate),
                   samples / model.sample_rate, int(out.shape[-1]))


def openl3_teacher(arg: str) -> Teacher:
    from .openl3_net import RATE, load_openl3

    triple, _, weights = arg.partition("@")
    parts = (triple or DEFAULT_OPENL3).split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ConfigError(f"openl3:{arg}: expected openl3:<repr>/<content>/<size>[@weights.h5]", key="teacher")
    model = load_openl3(parts[0], parts[1], int(parts[2]), Path(weights).expanduser() if weights else None)
    return Teacher(f"openl3:{'/'.join(parts)}:{file_digest(model.source)}", _ChannelAxis(model).eval(), RATE, 1.0,
                   int(parts[2]))


# -- TorchScript ----------------------------------------------------------------------------
def torchscript_teacher(path: Path, rate: int | None) -> Teacher:
    """``torch.jit.load`` does not unpickle arbitrary Python objects and runs no Python code: the
    archive's data is read by TorchScript's restricted unpickler (tensors and TorchScript types)
    and its code is TorchScript, compiled by torch. It is not a sandbox, though: that code runs
    when the model is called and may use any registered operator (``torch.from_file`` reads
    files, for instance), so load archives from sources you trust."""
    import warnings

    if not path.is_file():
        raise InputError(path, "TorchScript file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in torch >= 2.10
            model = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as exc:
        raise InputError(path, f"not a TorchScript archive: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    declared = getattr(model, "sample_rate", None)
    rate = int(rate or declared or 16000)
    window_s = float(getattr(model, "window_s", 1.0))
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, int(round(rate * window_s))))
    except Exception as exc:  # noqa: BLE001 - arbitrary model code
        raise InputError(path, f"the model fails on a (2, {int(round(rate * window_s))}) batch of audio: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        raise InputError(path, "the model must map (batch, samples) audio to a (batch, dims) tensor")
    return Teacher(f"torchscript:{file_digest(path)}@{rate}/{window_s:g}", model, rate, window_s, int(out.shape[1]))


# -- aiSFX ----------------------------------------------------------------------------------
# The recipe of aisfx 0.1.2 (Ma & Lerch, ISMIR 2022): 44.1 kHz, 2048-sample Hann frames every 1024
# samples, 96 HTK mel bands of the power spectrum (each filter summing to 1), log10(10^4·x + 1),
# min-max scaled by the training range [0, 9.4578], blocks of 100 frames (~2.3 s); the network is a
# 4-block CNN (64..512 channels), mean over frequency, then max over time -> 512-d.
AISFX_RATE, AISFX_NFFT, AISFX_HOP, AISFX_MELS, AISFX_BLOCK = 44100, 2048, 1024, 96, 100
AISFX_NORM_MAX = 9.457798957824707
AISFX_RECIPE = "v2"  # bump when the input recipe changes (cache key)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, pool) if pool != (1, 1) else x


class AisfxNet(nn.Module):
    """aiSFX's embedding CNN: (batch, frames, mels) log-mel -> (batch, 512)."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.conv_block1 = _ConvBlock(1, width)
        self.conv_block2 = _ConvBlock(width, width * 2)
        self.conv_block3 = _ConvBlock(width * 2, width * 4)
        self.conv_block4 = _ConvBlock(width * 4, width * 8)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1)
        x = self.conv_block1(x, (2, 2))
        x = self.conv_block2(x, (2, 2))
        x = self.conv_block3(x, (2, 2))
        x = self.conv_block4(x, (1, 1))
        return x.mean(dim=3).max(dim=2).values


class AisfxFrontEnd(nn.Module):
    """Audio window -> (batch, frames, 96) scaled log-mel, centred frames with zero padding."""

    def __init__(self):
        super().__init__()
        import torchaudio.functional as AF

        fb = AF.melscale_fbanks(AISFX_NFFT // 2 + 1, 0.0, AISFX_RATE / 2, AISFX_MELS, AISFX_RATE, norm=None,
                                mel_scale="htk")
        self.register_buffer("fb", fb / fb.sum(dim=0, keepdim=True).clamp(min=1e-12))
        self.register_buffer("window", torch.hann_window(AISFX_NFFT))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, AISFX_NFFT, AISFX_HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True).abs() ** 2
        mel = torch.einsum("bft,fm->btm", spec, self.fb)
        return torch.log10(mel * 10000.0 + 1.0) / AISFX_NORM_MAX


class AisfxModel(nn.Module):
    def __init__(self, net: AisfxNet):
        super().__init__()
        self.front, self.net = AisfxFrontEnd(), net

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(self.front(audio)[:, :AISFX_BLOCK])


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """aiSFX scales each *file* to a peak of 1 before its spectrogram."""
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    return (audio / peak).astype(np.float32) if peak > 0 else audio


def aisfx_checkpoint() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or spec.origin is None:
        raise ConfigError("the aisfx package is not installed: pip install --no-deps aisfx==0.1.2", key="teacher")
    return Path(spec.origin).parent / "models" / "checkpoint.pth"


def aisfx_allowlist() -> list[Any]:
    """The only non-tensor globals the checkpoint's pickle needs (each one checked necessary):
    numpy int64 scalars in its table of training datasets."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]


def load_aisfx_weights(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with the narrowest allowlist this checkpoint needs;
    nothing else can be unpickled. Returns the embedding network's state dict."""
    if not path.is_file():
        raise InputError(path, "aiSFX checkpoint not found in the installed aisfx package")
    try:
        with torch.serialization.safe_globals(aisfx_allowlist()):
            weights, _datasets = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to read it safely is a named error
        raise InputError(path, f"cannot load the aiSFX checkpoint safely: {str(exc).splitlines()[0]}") from None
    prefix = "embedding_net."
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def aisfx_teacher() -> Teacher:
    path = aisfx_checkpoint()
    net = AisfxNet()
    try:
        net.load_state_dict(load_aisfx_weights(path))
    except RuntimeError as exc:
        raise InputError(path, f"unexpected aiSFX checkpoint layout: {str(exc).splitlines()[0]}") from None
    window_s = (AISFX_BLOCK - 1) * AISFX_HOP / AISFX_RATE  # centred frames: exactly 100 of them
    return Teacher(f"aisfx:{file_digest(path)}:{AISFX_RECIPE}", AisfxModel(net).eval(), AISFX_RATE,
                   round(window_s, 6), 512, prepare=peak_normalise)
