"""Processes of a run: one, or several under ``torchrun`` (training, evaluation and prediction alike).

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; every process then works on its
share (``shard``) and rank 0 writes. CUDA processes use NCCL, CPU processes gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """This process's place among the run's processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Processes":
        """From torchrun's variables (before the process group exists)."""
        env = os.environ
        return cls(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))

    @classmethod
    def current(cls) -> "Processes":
        """The initialised process group, else this process alone."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, n: int) -> range:
        """This process's items of ``n``: every ``world_size``-th from ``rank``."""
        return range(self.rank, n, self.world_size)


def pick_device(device: Optional[str], procs: Processes) -> torch.device:
    """``device`` (default: CUDA when available); several CUDA processes get one GPU each."""
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda" and procs.distributed:
        chosen = torch.device("cuda", procs.local_rank)
        torch.cuda.set_device(chosen)
    return chosen


def init_process_group(device: torch.device, procs: Processes) -> bool:
    """Join the process group unless one exists or the run has one process; True if it was
    created here (then the caller destroys it at the end)."""
    if not procs.distributed or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def wrap_model(model: torch.nn.Module, device: torch.device, procs: Processes) -> torch.nn.Module:
    """``model`` itself for one process, else its DistributedDataParallel wrapper."""
    if not procs.distributed:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def all_reduce_mean(values: list[float], device: torch.device, procs: Processes) -> list[float]:
    """The mean over processes of each value (every process calls it with the same keys)."""
    if not procs.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / procs.world_size).tolist()


def all_gather_lists(items: list, procs: Processes) -> list:
    """Every process's list, concatenated in rank order, on every process."""
    if not procs.distributed:
        return items
    gathered: list = [None] * procs.world_size
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in (part or [])]


def gather_in_order(items: list[tuple[int, Any]], procs: Processes) -> list[tuple[int, Any]]:
    """Every process's ``(index, item)`` pairs, on the main process, sorted by index (stable:
    items of one index keep their order); an empty list on the others. How sharded prediction
    puts its records back in input order (each process holds ``shard``'s indices)."""
    if not procs.distributed:
        return sorted(items, key=lambda pair: pair[0])
    gathered: Optional[list] = [None] * procs.world_size if procs.is_main else None
    dist.gather_object(items, gathered, dst=0)
    if gathered is None:  # not the main process
        return []
    return sorted((pair for part in gathered for pair in part), key=lambda pair: pair[0])
