"""One optimiser step (paper Sec. 4; SPEC "Training recipe"): learning rate, forward and backward over
``accumulate`` batches, the non-finite check, gradient clipping, AdamW, and the loss averages logged."""

from __future__ import annotations

import contextlib
import logging
import math
import resource
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..common import Processes, all_reduce_mean
from .faults import TrainingError, TrainingHooks, all_finite
from .run_log import RunLog
from .train_state import list_checkpoints

log = logging.getLogger(__name__)


class TrainStep:
    """``step(group, iteration, epoch, device, ckpt_dir)`` -> the step's loss terms, lr and grad norm
    (``{"skipped": 1}`` for a skipped step). ``net`` is ``model`` or its DDP wrapper.

    lr_at: the learning rate at a 0-based (iteration, epoch) (``schedule.learning_rate``).
    amp: the autocast dtype, None for fp32. clip_grad_norm: the L2 norm gradients are clipped to
    before the update (0: no clipping). max_bad_steps: non-finite steps in a row that stop training.
    """

    def __init__(
        self,
        model: nn.Module,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        *,
        lr_at: Callable[[int, int], float],
        amp: Optional[torch.dtype],
        clip_grad_norm: float,
        max_bad_steps: int,
        procs: Processes,
        hooks: TrainingHooks,
    ) -> None:
        self.model, self.net, self.optimizer, self.scaler = model, net, optimizer, scaler
        self.lr_at, self.amp, self.clip_grad_norm, self.max_bad_steps = lr_at, amp, clip_grad_norm, max_bad_steps
        self.procs, self.hooks = procs, hooks
        self.skipped_steps = self.bad_in_row = 0

    def state(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps, "bad_in_row": self.bad_in_row}

    def load_state(self, ckpt: dict) -> None:
        self.skipped_steps, self.bad_in_row = ckpt["skipped_steps"], ckpt["bad_in_row"]

    def __call__(
        self, group: list, iteration: int, epoch: int, device: torch.device, ckpt_dir: Path
    ) -> dict[str, float]:
        """One optimiser step over ``group`` (``accumulate`` batches); skipped if not finite."""
        lr = self.lr_at(iteration, epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        amp = self.amp
        total, names = None, []
        for m, (images, targets) in enumerate(group):
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{"boxes": x["boxes"].to(device), "labels": x["labels"].to(device)} for x in targets]
            last = m == len(group) - 1
            ddp = cast(DistributedDataParallel, self.net)  # when it is not the model itself
            sync = ddp.no_sync() if self.net is not self.model and not last else contextlib.nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    losses = self.net(images, targets)
                loss = self.hooks.loss(iteration + 1, sum(losses.values()))
                # a non-finite loss gives non-finite gradients (on every rank, through DDP's
                # all-reduce), so the step is judged once, after backward
                self.scaler.scale(loss / len(group)).backward()
            values = torch.stack([loss.detach().float(), *(v.detach().float() for v in losses.values())]) / len(group)
            total, names = (values if total is None else total + values), list(losses)
        assert total is not None  # the group holds at least one batch
        if not all_finite(total[0], self.procs.world_size):
            self.optimizer.zero_grad(set_to_none=True)
            return self._bad_step(iteration, ckpt_dir)
        sums: list[float] = total.tolist()
        terms: dict[str, float] = defaultdict(float, loss=sums[0])
        for name, value in zip(names, sums[1:]):
            terms[name.split(".")[-1]] += value
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.clip_grad_norm if self.clip_grad_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():  # fp16: the scaler skips the step
            self.optimizer.zero_grad(set_to_none=True)
            return self._bad_step(iteration, ckpt_dir)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.bad_in_row = 0
        return {**terms, "lr": lr, "grad_norm": grad_norm}

    def _bad_step(self, iteration: int, ckpt_dir: Path) -> dict[str, float]:
        self.skipped_steps += 1
        self.bad_in_row += 1
        if self.scaler.is_enabled():
            self.scaler.update(self.scaler.get_scale() / 2)
        if self.procs.is_main:
            log.warning(
                "non-finite loss or gradient at iteration %d: step skipped (%d in a row, %d in all)",
                iteration + 1,
                self.bad_in_row,
                self.skipped_steps,
            )
        if self.bad_in_row >= self.max_bad_steps:
            good = list_checkpoints(ckpt_dir)
            where = f"the last good checkpoint is {good[0]}" if good else "no checkpoint was written yet"
            raise TrainingError(
                f"training stopped: {self.bad_in_row} non-finite steps in a row (iterations "
                f"{iteration - self.bad_in_row + 2}-{iteration + 1}); {where}; try a lower train.lr, "
                f"train.amp=none, or check the annotations"
            )
        return {"skipped": 1.0}

    def log_window(
        self, window: dict[str, float], run_log: RunLog, iteration: int, epoch: int, device: torch.device
    ) -> None:
        """Average a logging window's sums (losses over processes too) and write the record."""
        n = window.pop("n")
        good = n - window.pop("skipped", 0.0)
        keys = sorted(k for k in window if k.startswith("loss"))
        if keys:  # the same terms on every rank
            window.update(zip(keys, all_reduce_mean([window[k] for k in keys], device, self.procs)))
        if not self.procs.is_main:
            return
        means = {
            key: window[key] / good if good else None
            for key in ("loss", "loss_cls", "loss_bbox", "loss_iou", "lr", "grad_norm")
        }
        run_log.train(
            iteration,
            epoch,
            means,
            time=window["time"] / n,
            data_time=window["data_time"] / n,
            memory_mb=round(_memory_mb(device), 1),
            skipped_steps=self.skipped_steps,
        )


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
