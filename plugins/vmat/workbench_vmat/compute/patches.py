"""Training patches and full-volume inference.

Sampling strategies (where patch corners are drawn):

- ``random``: uniform over every corner of every case (cases weighted by their size);
- ``dose-weighted``: a patch's centre is drawn in proportion to the reference dose there,
  so the high-dose region, where gamma is judged hardest, dominates;
- ``gradient-weighted``: in proportion to the reference dose gradient magnitude, i.e.
  the penumbra;
- ``case-balanced``: the same number of patches from every case, uniform inside each.

The weighted strategies draw a quarter of their patches uniformly, so the low-dose bath
and the body edge are still seen. Corners are multiples of ``align`` (the network's
down-sampling factor), so cached full-volume teacher features can be cropped exactly.

`predict_volume` runs a network on a whole case: in one pass when the volume is no larger
than ``window``, else by overlapping windows blended with a Gaussian weight (no seams).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

SAMPLERS = ("random", "dose-weighted", "gradient-weighted", "case-balanced")
UNIFORM_SHARE = 0.25


@dataclass(frozen=True)
class Patch:
    case: int
    corner: tuple[int, int, int]
    size: tuple[int, int, int]

    def slices(self, stride: int = 1) -> tuple[slice, slice, slice]:
        return tuple(slice(c // stride, (c + s) // stride) for c, s in zip(self.corner, self.size))  # type: ignore[return-value]


def patch_shape(volume_shape: Sequence[int], patch_size: int, align: int = 1) -> tuple[int, int, int]:
    """The patch edge per axis: ``patch_size`` clipped to the volume, rounded down to ``align``."""
    out = []
    for n in volume_shape:
        p = min(int(patch_size), int(n))
        p = max(align, (p // align) * align)
        if p > n:
            raise ValueError(f"volume {tuple(volume_shape)} is smaller than one {align}-voxel block")
        out.append(p)
    return tuple(out)  # type: ignore[return-value]


def _corner_weights(reference: np.ndarray, size: tuple[int, int, int], align: int, kind: str) -> np.ndarray:
    """Weight of every aligned corner: the weight map's value at the patch centre."""
    if kind == "dose-weighted":
        w = np.clip(reference, 0, None).astype(np.float64)
    elif kind == "gradient-weighted":
        g = np.gradient(reference.astype(np.float64))
        w = np.sqrt(sum(gi * gi for gi in g))
    else:
        w = np.ones(reference.shape)
    idx = [np.arange(0, n - s + 1, align) + s // 2 for n, s in zip(reference.shape, size)]
    cw = w[np.ix_(*idx)]
    return cw


class PatchSampler:
    """Draws patches from a list of reference doses (one per case) with a strategy."""

    def __init__(self, references: Sequence[np.ndarray], patch_size: int, strategy: str = "random", align: int = 1):
        if strategy not in SAMPLERS:
            raise ValueError(f"unknown sampler {strategy!r} (known: {', '.join(SAMPLERS)})")
        if not references:
            raise ValueError("no cases to sample patches from")
        self.strategy, self.align = strategy, int(align)
        self.sizes = [patch_shape(r.shape, patch_size, align) for r in references]
        self.grids: list[tuple[int, int, int]] = []
        self.uniform: list[np.ndarray] = []
        self.weighted: list[np.ndarray] = []
        for ref, size in zip(references, self.sizes):
            cw = _corner_weights(ref, size, self.align, strategy)
            self.grids.append(cw.shape)
            self.uniform.append(np.full(cw.size, 1.0 / cw.size))
            flat = cw.ravel()
            total = flat.sum()
            self.weighted.append(flat / total if total > 0 else self.uniform[-1])
        n = np.array([u.size for u in self.uniform], float)
        self.case_share = n / n.sum()
        if strategy in ("dose-weighted", "gradient-weighted"):
            mass = np.array([_corner_weights(r, s, self.align, strategy).sum() for r, s in zip(references, self.sizes)])
            self.case_share = mass / mass.sum() if mass.sum() > 0 else self.case_share

    def sample(self, n: int, rng: np.random.Generator) -> list[Patch]:
        k = len(self.sizes)
        if self.strategy == "case-balanced":
            cases = np.concatenate([np.arange(k)] * (n // k + 1))[:n]
            rng.shuffle(cases)
        else:
            cases = rng.choice(k, size=n, p=self.case_share)
        out = []
        weighted = self.strategy in ("dose-weighted", "gradient-weighted")
        for c in cases:
            c = int(c)
            use_uniform = not weighted or rng.random() < UNIFORM_SHARE
            p = self.uniform[c] if use_uniform else self.weighted[c]
            flat = int(rng.choice(p.size, p=p))
            idx = np.unravel_index(flat, self.grids[c])
            corner = tuple(int(i) * self.align for i in idx)
            out.append(Patch(c, corner, self.sizes[c]))  # type: ignore[arg-type]
        return out


# -- inference ---------------------------------------------------------------------------------
def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    shape = x.shape[-3:]
    pads = [(-n) % multiple for n in shape]
    if any(pads):
        x = torch.nn.functional.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), mode="replicate")
    return x, tuple(shape)  # type: ignore[return-value]


def _gaussian(size: Sequence[int]) -> torch.Tensor:
    axes = [torch.exp(-0.5 * ((torch.arange(n, dtype=torch.float32) - (n - 1) / 2) / (n / 4)) ** 2) for n in size]
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return w.clamp_min(1e-3)


def _starts(n: int, window: int, step: int) -> list[int]:
    if n <= window:
        return [0]
    s = list(range(0, n - window + 1, step))
    if s[-1] != n - window:
        s.append(n - window)
    return s


@torch.no_grad()
def predict_volume(model: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray | torch.Tensor, *,
                   multiple: int = 1, window: int | None = None, overlap: float = 0.5,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Network output ``(Z, Y, X)`` for one case's ``(C, Z, Y, X)`` inputs (see module doc)."""
    x = torch.as_tensor(np.asarray(inputs, np.float32) if not isinstance(inputs, torch.Tensor) else inputs)
    x = x.float().unsqueeze(0).to(device)
    x, shape = _pad_to(x, multiple)
    full = x.shape[-3:]
    if window is None or all(n <= window for n in full):
        return model(x)[0, 0, : shape[0], : shape[1], : shape[2]].float().cpu().numpy()
    win = [min(full[a], max(multiple, (window // multiple) * multiple)) for a in range(3)]
    step = [max(multiple, int(w * (1 - overlap)) // multiple * multiple) for w in win]
    acc = torch.zeros(full, device=device)
    norm = torch.zeros(full, device=device)
    weight = _gaussian(win).to(device)
    for z in _starts(full[0], win[0], step[0]):
        for y in _starts(full[1], win[1], step[1]):
            for xx in _starts(full[2], win[2], step[2]):
                sl = (slice(z, z + win[0]), slice(y, y + win[1]), slice(xx, xx + win[2]))
                out = model(x[(slice(None), slice(None)) + sl])[0, 0].float()
                acc[sl] += out * weight
                norm[sl] += weight
    return (acc / norm)[: shape[0], : shape[1], : shape[2]].cpu().numpy()
