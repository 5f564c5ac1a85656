"""Device resolution and seeding shared by every plugin's training code."""
from __future__ import annotations

import random
import re

import numpy as np
import torch

from workbench.api import ConfigError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a torch.device) into a `torch.device`.

    ``auto`` picks the current CUDA device when one is available, else the CPU. Asking for
    CUDA on a machine without it (or for a device index that does not exist) raises a
    `ConfigError` that says so, rather than failing later inside a kernel.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(text)
    if match is None:
        raise ConfigError(f"unknown device {spec!r} (expected auto, cpu, cuda or cuda:N)", key="device")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {spec!r} requested but no CUDA device is available "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}); use 'cpu' or 'auto'",
            key="device",
        )
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    if index >= count:
        raise ConfigError(f"device {spec!r} requested but only {count} CUDA device(s) exist", key="device")
    return torch.device("cuda", index)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python's `random`, NumPy's legacy global generator and torch (CPU and all CUDA devices).

    With ``deterministic`` the cheap switches for repeatable results are set as well:
    cuDNN benchmark off and deterministic cuDNN kernels. (CPU kernels are deterministic for a
    fixed thread count already; `torch.use_deterministic_algorithms` is left alone because it
    makes some CUDA ops raise.)
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU `torch.Generator` that depends only on (seed, epoch, stream).

    Use it for data order and augmentation so that a run resumed after epoch k sees exactly
    the batches an uninterrupted run would see in epoch k+1.
    """
    mixed = np.random.SeedSequence([int(seed) % 2**63, int(epoch), int(stream)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(mixed[0]) << 32 | int(mixed[1]))


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """A NumPy `Generator` that depends only on (seed, epoch, stream); see `epoch_generator`."""
    return np.random.default_rng([int(seed) % 2**63, int(epoch), int(stream)])
