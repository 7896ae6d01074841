"""Length-bucketed batching: sentences of similar length share a batch, so little compute goes to padding."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Yields batches of indices whose lengths are close.

    Each epoch shuffles the indices, sorts them by length within pools of ``pool_factor * batch_size``,
    cuts the pools into batches and shuffles the batches. With ``num_replicas > 1`` each rank takes every
    ``num_replicas``-th batch; in training the batch count is padded to a multiple so every rank steps
    equally often, in evaluation shards may differ by one batch so that no sentence counts twice.

    Args:
        lengths: length of every example.
        batch_size: examples per batch.
        shuffle: shuffle pools and batches (training); otherwise batches follow sorted length.
        seed: base seed; the epoch is added, see ``set_epoch``.
        pool_factor: pool size in batches.
        num_replicas: number of data-parallel processes.
        rank: this process's rank.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 pool_factor: int = 50, num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = torch.as_tensor(list(lengths))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_factor = pool_factor
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        if not self.shuffle:
            order = torch.argsort(self.lengths, stable=True)
            return [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator)
        pool = self.batch_size * self.pool_factor
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        permutation = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in permutation]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        if self.num_replicas > 1 and self.shuffle:
            # Training: every rank takes as many steps, so the last batches are repeated to even the count.
            total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
            batches = batches + batches[:total - len(batches)]
        # Evaluation: uneven shards, so no sentence is counted twice in a metric.
        return iter(batches[self.rank::self.num_replicas])

    def __len__(self) -> int:
        count = len(self._all_batches())
        if self.shuffle:
            return math.ceil(count / self.num_replicas)
        return len(range(self.rank, count, self.num_replicas))

    def padding_fraction(self) -> float:
        """Share of padded positions over one epoch of batches (the waste that bucketing avoids)."""
        real = padded = 0
        for batch in self._all_batches():
            lengths = self.lengths[batch]
            real += int(lengths.sum())
            padded += int(lengths.max()) * len(batch)
        return 1.0 - real / max(padded, 1)
