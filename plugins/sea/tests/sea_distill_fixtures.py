"""Shared inputs of the distillation tests: a small generated UrbanSound8K-layout dataset (100 clips
of 2 s at 8 kHz, 10 classes x 10 folds) and a cheap TorchScript teacher (log spectrum -> 128-d),
both made once per test session under pytest's base temp folder."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

TEACHER_DIM = 128


class SpectrumTeacher(nn.Module):
    """1 s at 8 kHz -> 128-d: log power of 25 x 320-sample blocks, averaged, through a fixed random projection."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Linear(161, TEACHER_DIM)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(TEACHER_DIM, 161, generator=g) / 13.0)
            self.proj.bias.zero_()
        self.sample_rate = 8000
        self.window_s = 1.0

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        blocks = audio.reshape(audio.shape[0], 25, 320)
        power = torch.fft.rfft(blocks, dim=-1).abs().pow(2).mean(dim=1)
        return torch.tanh(self.proj(torch.log10(power + 1e-6)))


def shared_dir(tmp_path_factory, name: str) -> Path:
    return tmp_path_factory.getbasetemp() / name


def demo_root(tmp_path_factory) -> Path:
    from workbench_sea.compute.urban_demo import iter_generate

    root = shared_dir(tmp_path_factory, "sea-distill-data")
    if not (root / "metadata" / "UrbanSound8K.csv").exists():
        for _ in iter_generate(root, 1, 0, seconds=2.0, sr=8000):
            pass
    return root


def teacher_spec(tmp_path_factory) -> str:
    path = shared_dir(tmp_path_factory, "spectrum-teacher.pt")
    if not path.exists():
        torch.jit.save(torch.jit.script(SpectrumTeacher().eval()), str(path))
    return f"torchscript:{path}@8000"


def tiny_config(tmp_path_factory, **over):
    from workbench_sea.configs import DistillConfig

    base = dict(dataset_dir=str(demo_root(tmp_path_factory)), teacher=teacher_spec(tmp_path_factory), hop_s=0.5,
                sample_size=150, reduced_dim=64, student_width=0.125, epochs=2, train_batch_size=32, eval_folds=2,
                mlp_hidden=32, mlp_epochs=60, scratch_baseline=False, profile=False, export_onnx=False,
                export_torchscript=False, projection_points=200)
    return DistillConfig(**{**base, **over})
