"""kapre 0.1.4's Spectrogram / Melspectrogram front ends in torch (as used by OpenL3 and edgel3).

What kapre 0.1.4 computes, step by step (for a channels_last model):

1. STFT as a strided convolution of the raw signal with fixed real/imaginary DFT kernels
   (periodic Hann window folded into the kernels), TensorFlow 'same' or 'valid' padding;
   power = real² + imag².
2. Spectrogram only: ``sqrt(power) ** power_spectrogram`` when that power is not 2, then
   optional decibels. (Melspectrogram forces power_spectrogram = 2 and no decibels here.)
3. Melspectrogram: power spectrum times the stored (n_freq, n_mels) matrix, then
   ``sqrt(x) ** power_melgram`` when that power is not 2 (OpenL3/edgel3 use 1: magnitude-like).
4. Decibels (``amplitude_to_decibel``): 10·log10(max(x, 1e-10)), minus the maximum over every
   axis but the batch (channels included), floored at -80.

The output keeps kapre's (batch, channels, freq, frames) order, which is torch's NCHW view of
the channels_last (batch, freq, frames, channels) tensor the Keras layers after it saw.

Precision: bins 80 "dB" below the peak here are 10^-16 of the peak *power* (the decibels are
taken of an amplitude with a factor 10, not 20), far below float32 rounding of a 1024-tap
convolution. The front end therefore runs in float64 (cheap next to the network) and hands
float32 on; a float32 front end drifts by ~3e-3 relative on pure tones and chirps.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

AMIN, DYNAMIC_RANGE = 1e-10, 80.0


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same': output ceil(length / stride); an odd total puts the extra sample after."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def amplitude_to_decibel(x: torch.Tensor, amin: float = AMIN, dynamic_range: float = DYNAMIC_RANGE) -> torch.Tensor:
    log_spec = 10.0 * torch.log10(torch.clamp(x, min=amin))
    peak = log_spec.flatten(1).max(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    return torch.clamp(log_spec - peak, min=-dynamic_range)


# -- kernels kapre 0.1.4 builds (used when a weights file does not carry them) ---------------
def hann_periodic(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def stft_kernels(n_dft: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary DFT kernels with the periodic Hann window, in Keras's
    (n_dft, 1, 1, n_freq) layout. Matches the kernels stored in edgel3's files to float32 rounding."""
    t = np.arange(n_dft)[:, None]
    k = np.arange(n_dft // 2 + 1)[None, :]
    angle = 2.0 * np.pi * t * k / n_dft
    w = hann_periodic(n_dft)[:, None]
    return (np.cos(angle) * w)[:, None, None, :], (-np.sin(angle) * w)[:, None, None, :]


def mel_filterbank(sr: float, n_dft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = True) -> np.ndarray:
    """(n_freq, n_mels) triangular filters with area normalisation (each triangle scaled by
    2 / its width in Hz), as librosa's ``mel(norm=1)`` of kapre 0.1.4's time. HTK mel scale only."""
    if not htk:
        raise ValueError("only the HTK mel scale is implemented (OpenL3 and edgel3 use htk=True)")
    fmax = sr / 2.0 if fmax is None else fmax
    to_mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    to_hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, sr / 2.0, n_dft // 2 + 1)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - left) / (centre - left)
    falling = (right - freqs[None, :]) / (right - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (right - left))
    return weights.T


class KapreSpectrogram(nn.Module):
    """kapre 0.1.4 Spectrogram (``freq2mel`` None) or Melspectrogram.

    Give either stored ``real_kernels``/``imag_kernels`` (Keras layout (n_dft, 1, 1, n_freq);
    evaluated as a float64 convolution, so trained or unusual kernels work too) or ``n_dft`` alone
    to use the standard windowed DFT (float64 FFT, the fast path).
    """

    def __init__(self, n_hop: int, real_kernels: torch.Tensor | None = None, imag_kernels: torch.Tensor | None = None,
                 n_dft: int | None = None, padding: str = "same", power_spectrogram: float = 2.0,
                 return_decibel: bool = False, freq2mel: torch.Tensor | None = None, power_melgram: float = 1.0,
                 return_decibel_melgram: bool = False):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding {padding!r}: kapre uses 'same' or 'valid'")
        if real_kernels is not None and imag_kernels is not None:
            as_conv = lambda k: torch.as_tensor(k, dtype=torch.float64).reshape(k.shape[0], -1).T.unsqueeze(1).contiguous()  # noqa: E731
            self.register_buffer("real", as_conv(real_kernels))  # (n_freq, 1, n_dft)
            self.register_buffer("imag", as_conv(imag_kernels))
            self.n_dft = int(self.real.shape[-1])
            self.register_buffer("window", torch.empty(0, dtype=torch.float64))
        elif n_dft:
            self.register_buffer("real", torch.empty(0, dtype=torch.float64))
            self.register_buffer("imag", torch.empty(0, dtype=torch.float64))
            self.n_dft = int(n_dft)
            self.register_buffer("window", torch.from_numpy(hann_periodic(self.n_dft)))
        else:
            raise ValueError("give the stored DFT kernels or n_dft")
        mel = torch.empty(0) if freq2mel is None else torch.as_tensor(freq2mel)
        self.register_buffer("freq2mel", mel.to(torch.float64))
        self.n_hop, self.padding = int(n_hop), padding
        self.power_spectrogram, self.return_decibel = float(power_spectrogram), bool(return_decibel)
        self.power_melgram, self.return_decibel_melgram = float(power_melgram), bool(return_decibel_melgram)

    @property
    def n_bins(self) -> int:
        return int(self.freq2mel.shape[1]) if self.freq2mel.numel() else self.n_dft // 2 + 1

    def n_frames(self, samples: int) -> int:
        return math.ceil(samples / self.n_hop) if self.padding == "same" else (samples - self.n_dft) // self.n_hop + 1

    def power_stft(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, samples) float64 -> power (batch, n_freq, frames)."""
        if self.padding == "same":
            x = F.pad(x, same_padding(x.shape[-1], self.n_dft, self.n_hop))
        if self.window.numel():
            frames = x.unfold(-1, self.n_dft, self.n_hop) * self.window.to(torch.float64)  # (batch, frames, n_dft)
            return torch.fft.rfft(frames, dim=-1).abs().square().transpose(1, 2)
        x = x.unsqueeze(1)
        real, imag = self.real.to(torch.float64), self.imag.to(torch.float64)  # even after a .float() of the model
        return F.conv1d(x, real, stride=self.n_hop).square() + F.conv1d(x, imag, stride=self.n_hop).square()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, channels, samples) -> (batch, channels, freq_or_mel, frames), in x's dtype."""
        dtype = x.dtype
        b, ch, n = x.shape
        if n < self.n_dft and self.padding == "valid":
            raise ValueError(f"input of {n} samples is shorter than the {self.n_dft}-point STFT")
        power = self.power_stft(x.reshape(b * ch, n).to(torch.float64))
        out = power.reshape(b, ch, power.shape[1], power.shape[2])
        if self.power_spectrogram != 2.0:
            out = torch.sqrt(out) ** self.power_spectrogram
        if self.return_decibel:
            out = amplitude_to_decibel(out)
        if self.freq2mel.numel():
            out = torch.einsum("bcft,fm->bcmt", out, self.freq2mel.to(torch.float64))
            if self.power_melgram != 2.0:
                out = torch.sqrt(out) ** self.power_melgram
            if self.return_decibel_melgram:
                out = amplitude_to_decibel(out)
        return out.to(dtype if dtype.is_floating_point else torch.float32)
