"""kapre 0.1.4's Spectrogram / Melspectrogram front ends in torch, with the stored kernels.

kapre computes the STFT as a strided convolution with fixed real/imaginary DFT kernels
(TensorFlow 'same' padding), a power spectrogram, an optional mel projection, then
``pow(sqrt(x), power)`` when the requested power is not 2, and decibels: 10·log10 of the
result (floored at 1e-10), minus the per-example maximum, clipped at -80 dB.
Output layout is torch's NCHW with H = frequency (or mel) bins and W = frames, which is
the channels_last (batch, freq, time, channel) layout Keras models were trained on.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same': output ceil(length / stride), the extra pixel goes after."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def amplitude_to_decibel(x: torch.Tensor, amin: float = 1e-10, dynamic_range: float = 80.0) -> torch.Tensor:
    log_spec = 10.0 * torch.log10(torch.clamp(x, min=amin))
    peak = log_spec.flatten(1).max(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    return torch.clamp(log_spec - peak, min=-dynamic_range)


class KapreSpectrogram(nn.Module):
    def __init__(self, real_kernels: torch.Tensor, imag_kernels: torch.Tensor, n_hop: int, padding: str = "same",
                 power_spectrogram: float = 2.0, return_decibel: bool = False,
                 freq2mel: torch.Tensor | None = None, power_melgram: float = 1.0, return_decibel_melgram: bool = False):
        super().__init__()
        # Keras kernels (n_dft, 1, 1, n_freq) -> conv1d weight (n_freq, 1, n_dft)
        self.register_buffer("real", real_kernels.reshape(real_kernels.shape[0], -1).T.unsqueeze(1).contiguous())
        self.register_buffer("imag", imag_kernels.reshape(imag_kernels.shape[0], -1).T.unsqueeze(1).contiguous())
        self.register_buffer("freq2mel", freq2mel if freq2mel is not None else torch.empty(0))
        self.n_dft, self.n_hop, self.padding = self.real.shape[-1], n_hop, padding
        self.power_spectrogram, self.return_decibel = power_spectrogram, return_decibel
        self.power_melgram, self.return_decibel_melgram = power_melgram, return_decibel_melgram

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, channels, samples) -> (batch, channels, freq_or_mel, frames)."""
        b, ch, n = x.shape
        x = x.reshape(b * ch, 1, n)
        if self.padding == "same":
            x = F.pad(x, same_padding(n, self.n_dft, self.n_hop))
        power = F.conv1d(x, self.real, stride=self.n_hop) ** 2 + F.conv1d(x, self.imag, stride=self.n_hop) ** 2
        out = power.reshape(b, ch, power.shape[1], power.shape[2])
        if self.power_spectrogram != 2.0:
            out = torch.sqrt(out) ** self.power_spectrogram
        if self.return_decibel:
            out = amplitude_to_decibel(out)
        if self.freq2mel.numel():
            out = torch.einsum("bcft,fm->bcmt", out, self.freq2mel)
            if self.power_melgram != 2.0:
                out = torch.sqrt(out) ** self.power_melgram
            if self.return_decibel_melgram:
                out = amplitude_to_decibel(out)
        return out
