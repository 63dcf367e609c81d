"""The data a training run reads: the given datasets or the config's (the model's class count
follows the training data), and each epoch's batches."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from ..common import Processes
from ..config import Config, ConfigError
from ..data import build_datasets, collate
from ..data.sampler import GroupedBatchSampler

log = logging.getLogger(__name__)


def training_datasets(cfg: Config, train: Any, val: Any, world_size: int) -> tuple[Any, Any, Config]:
    """The given datasets, or the config's; the config's class count follows the training data.
    A step larger than the training set is refused: it would hold the same images several times."""
    if train is None:
        train, built_val = build_datasets(cfg)
        val = val if val is not None else built_val
    step = cfg.data.batch_size * world_size
    if len(train) < step:
        raise ConfigError(
            f"`data.batch_size` {cfg.data.batch_size} x {world_size} process(es) is more than the "
            f"{len(train)} training images; lower `data.batch_size` (a batch would repeat images)"
        )
    num_classes = len(train.class_names)
    if cfg.model.num_classes != num_classes:
        log.info("num_classes %d -> %d (the training set's categories)", cfg.model.num_classes, num_classes)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=num_classes))
    return train, val, cfg


def batch_sampler(dataset: Any, batch_size: int, *, seed: int, procs: Processes) -> GroupedBatchSampler:
    """This process's batches of ``dataset``, grouped by orientation (``data.sampler``)."""
    return GroupedBatchSampler(
        dataset.aspect_ratios(), batch_size, seed=seed, rank=procs.rank, world_size=procs.world_size
    )


def epoch_batches(
    dataset: Any, sampler: GroupedBatchSampler, epoch: int, *, start: int, workers: int, device: torch.device
) -> Iterator:
    """The batches of ``epoch`` from batch ``start`` on (a resumed run skips those already trained)."""
    sampler.set_epoch(epoch, start=start)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers, pin_memory=device.type == "cuda"
    )
    return iter(loader)
