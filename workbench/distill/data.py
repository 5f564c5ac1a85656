"""Batches whose order depends only on (seed, epoch), so that resumed runs see the same data."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch

from .device import epoch_generator


class TensorBatches:
    """Mini-batches of equally long tensors, shuffled by `epoch_generator(seed, epoch)`.

    ``TensorBatches((x, y), batch_size=32, seed=cfg.seed, epoch=epoch)`` yields ``(x[idx], y[idx])``
    tuples (a single tensor yields tensors). It has a ``len``, so the trainer reports progress
    within an epoch. Use it as ``train_batches=lambda epoch: TensorBatches(..., epoch=epoch)``.
    """

    def __init__(self, tensors: Sequence[torch.Tensor] | torch.Tensor, batch_size: int, seed: int, epoch: int,
                 shuffle: bool = True, drop_last: bool = False):
        self.single = isinstance(tensors, torch.Tensor)
        self.tensors = (tensors,) if self.single else tuple(tensors)
        if not self.tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        n = len(self.tensors[0])
        if any(len(t) != n for t in self.tensors):
            raise ValueError(f"tensors differ in length: {[len(t) for t in self.tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.drop_last = n, int(batch_size), drop_last
        self.order = torch.randperm(n, generator=epoch_generator(seed, epoch)) if shuffle else torch.arange(n)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        for b in range(len(self)):
            idx = self.order[b * self.batch_size:(b + 1) * self.batch_size]
            batch = tuple(t[idx] for t in self.tensors)
            yield batch[0] if self.single else batch


def shuffled_indices(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of ``range(n)`` that depends only on (seed, epoch)."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch))
