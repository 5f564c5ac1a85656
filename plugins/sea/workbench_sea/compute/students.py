"""SEA students: the L3 audio network shrunk by SEA's per-block reduction factors.

Input: 1 s of mono audio at 8 kHz. Front end: torchaudio's MelSpectrogram (1024-point DFT,
hop 160, 64 mel bands, zero-padded centred frames -> 51 frames), in dB, then a BatchNorm
over the single input channel (as the published SEA/EdgeL3 models do). Body: 4 blocks of
two 3x3 conv + BatchNorm + ReLU, 2x2 max pooling between blocks, global max pooling at the
end; the last conv has exactly ``out_dim`` channels, so the output is the reduced embedding.
Unlike L3's embedding layer, the last conv has no ReLU: reduced (PCA/UMAP) targets are signed.

Widths: L3's audio widths (64, 128, 256, 512 per block) divided by SEA's reduction factors
for the output size (``REDUCTION_FACTORS``), times ``width``. ``blocks`` < 4 drops blocks from
the end (the last kept block still ends in ``out_dim`` channels). ``stem_stride`` > 1 strides the
first conv (the published students use 1): the first block's maps, which set the peak activation
memory, shrink by stride², so a student several times wider fits the same activation budget.

The front end computes the spectrogram a few frames at a time (``chunk_frames``): the result
is the same as one call on the whole window, but the complex STFT of the whole window (the
largest tensor of the forward pass for a small student) is never alive at once. That is
what a microcontroller port does too, and it is what the host profiler's activation
measurement (peak bytes of live tensors) sees.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

SAMPLE_RATE = 8000
WINDOW_S = 1.0
N_FFT = 1024
HOP = 160
N_MELS = 64
L3_WIDTHS = (64, 128, 256, 512)
REDUCTION_FACTORS = {512: (1, 1, 1, 1), 256: (2, 2, 2, 2), 128: (2, 2, 2, 4), 64: (2, 2, 2, 8)}
STUDENT_FORMAT = "workbench_sea.student/1"


@dataclass(frozen=True)
class StudentSpec:
    out_dim: int = 64
    width: float = 1.0
    blocks: int = 4
    chunk_frames: int = 8
    stem_stride: int = 1
    window_s: float = WINDOW_S
    widths: tuple[int, ...] = ()  # explicit conv widths per block (overrides ``width``); empty: derived

    def __post_init__(self) -> None:
        from workbench.api import ConfigError

        if self.out_dim < 1:
            raise ConfigError(f"student output size must be >= 1, got {self.out_dim}", key="reduced_dim")
        if not self.width > 0:
            raise ConfigError(f"student width multiplier must be > 0, got {self.width}", key="student_width")
        if not 1 <= self.blocks <= 4:
            raise ConfigError(f"student blocks must be 1..4, got {self.blocks}", key="student_blocks")
        if not 1 <= self.stem_stride <= 4:
            raise ConfigError(f"student stem stride must be 1..4, got {self.stem_stride}", key="student_stem_stride")
        if self.chunk_frames < 1:
            raise ConfigError(f"chunk_frames must be >= 1, got {self.chunk_frames}", key="chunk_frames")
        if self.widths and (len(self.widths) != self.blocks or min(self.widths) < 1):
            raise ConfigError(f"student widths {list(self.widths)} must be {self.blocks} positive numbers",
                              key="student_block_widths")
        if not 0.25 <= self.window_s <= 10:
            raise ConfigError(f"student window must be 0.25..10 s, got {self.window_s}", key="student_window_s")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * SAMPLE_RATE))

    def label(self) -> str:
        """Short description for tables: "SEA 64-d, width 0.5" or "SEA 64-d, widths 16/32/96/96, 2.3 s"."""
        size = f"widths {'/'.join(map(str, self.widths))}" if self.widths else f"width {self.width:g}"
        window = f", {self.window_s:g} s" if self.window_s != WINDOW_S else ""
        return f"SEA {self.out_dim}-d, {size}{window}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": frame_hop(self.window_samples),
                "n_mels": N_MELS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StudentSpec":
        kw = {k: data[k] for k in ("out_dim", "width", "blocks", "chunk_frames", "stem_stride", "window_s", "widths")
              if k in data}
        if "widths" in kw:
            kw["widths"] = tuple(int(w) for w in kw["widths"])
        return cls(**kw)


def frame_hop(window_samples: int) -> int:
    """Spectrogram hop for a window: the 1 s window's 160 samples, scaled with the window so every window
    length gives the same 51 frames (same feature-map sizes, so the same activation memory)."""
    return max(1, int(window_samples) * HOP // int(round(WINDOW_S * SAMPLE_RATE)))


def reduction_factors(out_dim: int) -> tuple[int, ...]:
    """SEA's factors for the published sizes; other sizes scale the last block to ``out_dim``."""
    if out_dim in REDUCTION_FACTORS:
        return REDUCTION_FACTORS[out_dim]
    return (2, 2, 2, max(1, round(L3_WIDTHS[-1] / out_dim)))


def block_widths(spec: StudentSpec) -> list[tuple[int, int]]:
    """(first conv, second conv) output channels of each kept block."""
    factors = reduction_factors(spec.out_dim)
    widths = list(spec.widths) or [max(1, round(L3_WIDTHS[i] / factors[i] * spec.width)) for i in range(spec.blocks)]
    out = [(w, w) for w in widths]
    out[-1] = (widths[-1], spec.out_dim)
    return out


class LogMel(nn.Module):
    """(batch, samples) audio -> (batch, 1, mels, frames) dB mel spectrogram, computed in chunks of frames."""

    def __init__(self, chunk_frames: int = 8, hop: int = HOP):
        super().__init__()
        import torchaudio

        self.chunk_frames, self.hop = int(chunk_frames), int(hop)
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=self.hop,
                                                        n_mels=N_MELS, center=False, power=2.0)

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop  # centred frames (N_FFT // 2 zeros each side)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        pad = N_FFT // 2
        x = nn.functional.pad(audio, (pad, pad))
        n = 1 + (x.shape[-1] - N_FFT) // self.hop
        parts = []
        for start in range(0, n, self.chunk_frames):
            stop = min(n, start + self.chunk_frames)
            seg = x[:, start * self.hop: (stop - 1) * self.hop + N_FFT]
            parts.append(self.mel(seg))
        spec = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        return (10.0 * torch.log10(spec.clamp_min(1e-10))).unsqueeze(1)


class ConvBlock(nn.Module):
    def __init__(self, cin: int, c1: int, c2: int, last: bool = False, stride: int = 1):
        super().__init__()
        self.last = last  # the embedding layer: no ReLU, so it can match signed (PCA/UMAP) targets
        self.conv1 = nn.Conv2d(cin, c1, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one name, rebound at every step: at most two feature maps of the block are alive at once
        x = self.conv1(x)
        x = torch.relu_(self.bn1(x))
        x = self.conv2(x)  # rebinding frees the block's middle map before bn2 allocates its output
        x = self.bn2(x)
        return x if self.last else torch.relu_(x)


class SeaStudent(nn.Module):
    """(batch, 8000) audio at 8 kHz -> (batch, out_dim) embedding."""

    def __init__(self, spec: StudentSpec):
        super().__init__()
        self.spec = spec
        self.sample_rate, self.window_s = SAMPLE_RATE, spec.window_s
        self.frontend = LogMel(spec.chunk_frames, frame_hop(spec.window_samples))
        self.input_norm = nn.BatchNorm2d(1)
        blocks, cin = [], 1
        widths = block_widths(spec)
        for i, (c1, c2) in enumerate(widths):
            blocks.append(ConvBlock(cin, c1, c2, last=i == len(widths) - 1, stride=spec.stem_stride if i == 0 else 1))
            cin = c2
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)

    @property
    def out_dim(self) -> int:
        return self.spec.out_dim

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.from_spectrogram(self.frontend(audio))

    def from_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        """The trainable part: (batch, 1, mels, frames) dB spectrogram -> embedding. The front end has
        no parameters, so training computes it once per frame instead of once per step."""
        x = self.input_norm(spec)
        for i, block in enumerate(self.blocks):
            if i:
                x = self.pool(x)
            x = block(x)
        return torch.amax(x, dim=(2, 3))


class ScratchClassifier(nn.Module):
    """The student architecture with a linear head, trained on labels (the from-scratch baseline)."""

    def __init__(self, spec: StudentSpec, classes: int):
        super().__init__()
        self.body = SeaStudent(spec)
        self.head = nn.Linear(spec.out_dim, classes)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(audio))

    def from_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        return self.head(self.body.from_spectrogram(spec))


def build_student(spec: StudentSpec | dict) -> SeaStudent:
    return SeaStudent(spec if isinstance(spec, StudentSpec) else StudentSpec.from_dict(spec))


def spectrograms(audio, chunk: int = 512) -> torch.Tensor:
    """The student front end's output for (frames, samples) audio windows (numpy or tensor), in chunks."""
    x = torch.as_tensor(audio)
    frontend = LogMel(chunk_frames=64, hop=frame_hop(x.shape[-1]))
    with torch.no_grad():
        return torch.cat([frontend(x[b:b + chunk]) for b in range(0, len(x), chunk)])


def example_input(spec: StudentSpec, batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, spec.window_samples)


def save_student(model: SeaStudent, path, meta: dict[str, Any]) -> None:
    """safetensors weights; ``meta`` (JSON-able strings only in the header) goes beside as JSON by the caller."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": STUDENT_FORMAT})


def load_student(weights_path, spec: StudentSpec | dict) -> SeaStudent:
    """Weights from safetensors (no code executed); a mismatch names the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from workbench.api import InputError

    model = build_student(spec)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise InputError(weights_path, f"not a readable safetensors file: {exc}") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise InputError(weights_path, f"weights do not fit the student {spec}: {exc}") from None
    return model.eval()
