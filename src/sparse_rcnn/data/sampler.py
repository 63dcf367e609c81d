"""Batch sampler for training: shuffled, aspect-ratio grouped, deterministic, resumable, sharded.

Like MMDetection's ``AspectRatioBatchSampler`` (training recipe, SPEC "Training recipe"), images
with w >= h and w < h go to separate buckets so that a batch pads little. Unlike it, the grouping
is done on *global* batches (``batch_size * world_size`` images) which are then split by rank:
the images that make up one optimiser step are the same for 1 process x batch 8 and 4 processes x
batch 2, so a run is reproducible whatever the number of processes. The order is a pure function
of ``(seed, epoch)``; ``set_epoch(epoch, start=k)`` skips the first k batches, which is how an
interrupted run resumes mid-epoch. Every global batch is full: the last one is topped up with
images from the start of the epoch's order (each epoch sees every image at least once).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler[list[int]]):
    """Yields this rank's list of dataset indices for each step of the epoch.

    Args:
        aspect_ratios: w / h of every dataset item (``CocoDetection.aspect_ratios()``).
        batch_size: images per process and step.
        seed: with the epoch, decides the order.
        shuffle: False keeps dataset order (still grouped).
        rank, world_size: this process's share (``torch.distributed`` rank and world size).
    """

    def __init__(
        self,
        aspect_ratios: Sequence[float],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if len(aspect_ratios) == 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.landscape = [r >= 1.0 for r in aspect_ratios]
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order; skip its first ``start`` batches (resume)."""
        if not 0 <= start <= len(self):
            raise ValueError(f"start {start} outside the epoch's {len(self)} batches")
        self.epoch, self.start = epoch, start

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's global batches (``batch_size * world_size`` indices each), all ranks."""
        n, size = len(self.landscape), self.batch_size * self.world_size
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        buckets: dict[bool, list[int]] = {True: [], False: []}
        batches = []
        for i in order:
            bucket = buckets[self.landscape[i]]
            bucket.append(i)
            if len(bucket) == size:
                batches.append(bucket[:])
                bucket.clear()
        rest = buckets[True] + buckets[False]  # leftovers: mixed batches, as MMDetection
        if rest:
            rest += [order[k % n] for k in range(-len(rest) % size)]
            batches += [rest[k : k + size] for k in range(0, len(rest), size)]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        for batch in self.global_batches(self.epoch)[self.start :]:
            yield batch[lo:hi]

    def __len__(self) -> int:
        """Batches in a whole epoch (independent of ``start``)."""
        n, size = len(self.landscape), self.batch_size * self.world_size
        full = sum(self.landscape) // size + (n - sum(self.landscape)) // size
        rest = n - full * size
        return full + -(-rest // size)
