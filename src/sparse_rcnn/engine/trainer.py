"""Training (paper Sec. 4 "Implementation details", with MMDetection's recipe: SPEC "Training recipe").

AdamW (lr 2.5e-5, weight decay 1e-4 on every parameter), gradient clipping at L2 norm 1, linear
warm-up over 500 iterations from x0.001, then x0.1 at each ``lr_steps`` epoch; batch 16 in total
(2 images x 8 GPUs). One *iteration* is one optimiser step; with ``train.accumulate = k`` it takes
k batches per process.

Other batch sizes. The recipe is tuned for 16 images per step (``batch_size x processes x
accumulate``). AdamW is much less sensitive to the batch than SGD: first keep lr 2.5e-5 and use
``train.accumulate`` to reach 16 if memory allows. Otherwise linear scaling ``lr x B/16`` is a
starting point, not a guarantee, and the warm-up should cover about the same number of images
(``warmup_iters x 16/B``). Epoch-based steps need no change.

Runs are exactly resumable: checkpoints hold the model, optimiser, AMP scaler, counters and RNG
states (``train_state``); the data order and augmentation are functions of (seed, epoch, index),
and the learning rate a pure function of (iteration, epoch), so resuming ends with the same
parameters as an uninterrupted run. Non-finite steps, signals and the fault injection switches
used by the tests are described in ``faults``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import resource
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoints import model_checkpoint, save_checkpoint
from .schedule import build_optimizer, lr_factor
from ..config import Config, ConfigError, check_values
from .faults import StopSignals, TrainingError, TrainingInterrupted, all_finite, nan_iterations, slow_save
from ..data import build_datasets
from ..models import build_model
from ..data.sampler import GroupedBatchSampler
from .train_state import checkpoint_path, list_checkpoints, newest_good, prune, rng_state, set_rng_state

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "build_optimizer", "lr_factor", "build_datasets"]
log = logging.getLogger(__name__)


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Trainer:
    """Trains a Sparse R-CNN from ``cfg`` and writes everything to ``output_dir``.

    ``output_dir/log.jsonl`` (train records every ``log_interval`` iterations, val records after
    each evaluation), TensorBoard scalars (if installed), ``checkpoints/iter_XXXXXXX.pth``
    (every ``checkpoint_interval`` iterations and each epoch end; the last ``keep_checkpoints``
    kept), ``model_final.pth`` (model + config), ``metrics.json`` and ``curves.png``.
    Under ``torchrun`` each process trains on its shard; only rank 0 writes.
    ``train_dataset`` / ``val_dataset`` replace the COCO files of ``cfg.data`` (any dataset with
    ``class_names``, ``aspect_ratios()`` and ``(image, target)`` items).
    """

    def __init__(
        self, cfg: Config, *, output_dir: str | Path, resume: bool = False, device: Optional[str] = None,
        progress: bool = True, train_dataset: Any = None, val_dataset: Any = None,
    ) -> None:
        check_values(cfg)  # a Config built in Python has not been through load_config's checks
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.world_size > 1:
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        self._owns_group = False
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self._owns_group = True
        self.is_main = self.rank == 0
        self.output_dir = Path(output_dir)
        self.ckpt_dir = self.output_dir / "checkpoints"
        self.progress = progress

        if train_dataset is None:
            train_dataset, built_val = build_datasets(cfg)
            val_dataset = val_dataset if val_dataset is not None else built_val
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        class_names = list(train_dataset.class_names)
        if cfg.model.num_classes != len(class_names):
            log.info("num_classes %d -> %d (the training set's categories)", cfg.model.num_classes, len(class_names))
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=len(class_names)))
        self.cfg = cfg
        t = cfg.train

        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        random.seed(t.seed)
        self.model = build_model(cfg.model, class_names).to(self.device)
        self.model.train()
        self.net: nn.Module = self.model
        if self.world_size > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        self.optimizer = build_optimizer(self.model, lr=t.lr, weight_decay=t.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        self.sampler = GroupedBatchSampler(
            train_dataset.aspect_ratios(), cfg.data.batch_size, seed=t.seed, rank=self.rank, world_size=self.world_size,
        )
        self.batches_per_epoch = len(self.sampler)
        self.iters_per_epoch = -(-self.batches_per_epoch // t.accumulate)
        self.max_iters = t.max_iters if t.max_iters is not None else t.epochs * self.iters_per_epoch
        self.iter = self.epoch = self.iter_in_epoch = 0
        self.skipped_steps = self.bad_in_row = 0
        self.last_saved_iter = -1
        self.metrics: dict[str, float] = {}
        self.signals = StopSignals(announce=self.is_main)
        self._nan_at = nan_iterations()
        if resume:
            self._resume()
        elif list_checkpoints(self.ckpt_dir):
            raise ConfigError(f"{self.ckpt_dir} already holds checkpoints; continue that run with `resume`, or choose another `output_dir`")
        self._writer = None

    # ---------------------------------------------------------------- loop
    def fit(self) -> dict[str, float]:
        """Train to ``max_iters`` (or ``epochs``); return the last validation metrics ({} without val)."""
        try:
            with self.signals:
                return self._fit()
        finally:
            if self._writer is not None:
                self._writer.close()
            if self._owns_group and dist.is_initialized():
                dist.destroy_process_group()

    def _fit(self) -> dict[str, float]:
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._writer = self._tensorboard()
            log.info("training %s: %d iterations (%d per epoch, %d images/step over %d process(es)) -> %s",
                     self.cfg.name, self.max_iters, self.iters_per_epoch,
                     self.cfg.data.batch_size * self.world_size * self.cfg.train.accumulate, self.world_size, self.output_dir)
        bar = self._progress_bar()
        while self.iter < self.max_iters:
            if self._train_epoch(bar):  # a whole epoch done
                self._save()
                interval = self.cfg.train.eval_interval
                if interval and self.epoch % interval == 0 and self.iter < self.max_iters:
                    self._evaluate()
        bar.close()
        self._save()
        if self.val_dataset is not None and self.metrics.get("iter") != self.iter:
            self._evaluate()
        self._finish()
        return {k: v for k, v in self.metrics.items() if k not in ("iter", "epoch")}

    def _train_epoch(self, bar) -> bool:
        """Train to the end of the epoch (True) or to ``max_iters`` (False)."""
        k = self.cfg.train.accumulate
        self.sampler.set_epoch(self.epoch, start=self.iter_in_epoch * k)
        if hasattr(self.train_dataset, "set_epoch"):
            self.train_dataset.set_epoch(self.epoch)
        from ..data import collate

        loader = DataLoader(
            self.train_dataset, batch_sampler=self.sampler, collate_fn=collate,
            num_workers=self.cfg.data.workers, pin_memory=self.device.type == "cuda",
        )
        batches = iter(loader)
        window: dict[str, float] = defaultdict(float)
        while self.iter < self.max_iters:
            t0 = time.perf_counter()
            n = min(k, self.batches_per_epoch - self.iter_in_epoch * k)
            try:
                group = [next(batches) for _ in range(n)]
            except Exception:  # a worker killed by the same Ctrl-C: stop at this step boundary
                if self.signals.signum is None:
                    raise
                self._stop()
            t1 = time.perf_counter()
            stats = self._step(group)
            self.iter += 1
            self.iter_in_epoch += 1
            for key, v in stats.items():
                window[key] += v
            window["data_time"] += t1 - t0
            window["time"] += time.perf_counter() - t0
            window["n"] += 1
            bar.update(1)
            if "loss" in stats:
                bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2e}", refresh=False)
            if self.iter % self.cfg.train.log_interval == 0 or self.iter == self.max_iters:
                self._log_train(window)
                window = defaultdict(float)
            finished = self.iter_in_epoch == self.iters_per_epoch
            if finished:
                self.epoch, self.iter_in_epoch = self.epoch + 1, 0
            interval = self.cfg.train.checkpoint_interval
            if interval and self.iter % interval == 0:
                self._save()
            if self.signals.requested(self.device, self.world_size):
                self._stop()
            if finished:
                return True
        return False

    def _step(self, group: list) -> dict[str, float]:
        """One optimiser step over ``group`` (``accumulate`` batches); skipped if not finite."""
        t = self.cfg.train
        lr = t.lr * lr_factor(self.iter, self.epoch, warmup_iters=t.warmup_iters, warmup_factor=t.warmup_factor,
                              steps=t.lr_steps, gamma=t.lr_gamma)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
        total, names = None, []
        for m, (images, targets) in enumerate(group):
            images = [im.to(self.device, non_blocking=True) for im in images]
            targets = [{"boxes": x["boxes"].to(self.device), "labels": x["labels"].to(self.device)} for x in targets]
            last = m == len(group) - 1
            sync = self.net.no_sync() if self.net is not self.model and not last else contextlib.nullcontext()
            with sync:
                with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    losses = self.net(images, targets)
                loss = sum(losses.values())
                if self.iter + 1 in self._nan_at:
                    loss = loss * float("nan")
                # a non-finite loss gives non-finite gradients (on every rank, through DDP's
                # all-reduce), so the step is judged once, after backward
                self.scaler.scale(loss / len(group)).backward()
            values = torch.stack([loss.detach().float(), *(v.detach().float() for v in losses.values())]) / len(group)
            total, names = (values if total is None else total + values), list(losses)
        if not all_finite(total[0], self.world_size):
            self.optimizer.zero_grad(set_to_none=True)
            return self._bad_step()
        values = total.tolist()
        terms: dict[str, float] = defaultdict(float, loss=values[0])
        for name, value in zip(names, values[1:]):
            terms[name.split(".")[-1]] += value
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = t.clip_grad_norm if t.clip_grad_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():  # fp16: the scaler skips the step
            self.optimizer.zero_grad(set_to_none=True)
            return self._bad_step()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.bad_in_row = 0
        return {**terms, "lr": lr, "grad_norm": grad_norm}

    def _bad_step(self) -> dict[str, float]:
        self.skipped_steps += 1
        self.bad_in_row += 1
        if self.scaler.is_enabled():
            self.scaler.update(self.scaler.get_scale() / 2)
        if self.is_main:
            log.warning("non-finite loss or gradient at iteration %d: step skipped (%d in a row, %d in all)",
                        self.iter + 1, self.bad_in_row, self.skipped_steps)
        if self.bad_in_row >= self.cfg.train.max_bad_steps:
            good = list_checkpoints(self.ckpt_dir)
            where = f"the last good checkpoint is {good[0]}" if good else "no checkpoint was written yet"
            raise TrainingError(
                f"training stopped: {self.bad_in_row} non-finite steps in a row (iterations "
                f"{self.iter - self.bad_in_row + 2}-{self.iter + 1}); {where}; try a lower train.lr, "
                f"train.amp=none, or check the annotations"
            )
        return {"skipped": 1.0}

    # ---------------------------------------------------------------- evaluation and output
    def _evaluate(self) -> None:
        """COCO box AP on the validation set; every process evaluates a shard (``evaluate`` gathers)."""
        if self.val_dataset is None:
            return
        from ..evaluation import evaluate

        metrics, self.val_results = evaluate(self.model, self.val_dataset, batch_size=self.cfg.data.batch_size,
                                             device=self.device, workers=self.cfg.data.workers, progress=self._show_progress())
        self.model.train()
        self.metrics = {**{k: float(v) for k, v in metrics.items()}, "iter": self.iter, "epoch": self.epoch}
        if self.is_main:
            self._append_log({"type": "val", **self.metrics})
            log.info("epoch %d iteration %d: bbox_mAP %.4f", self.epoch, self.iter, self.metrics.get("bbox_mAP", float("nan")))
            if self._writer is not None:
                for key, v in metrics.items():
                    self._writer.add_scalar(f"val/{key}", float(v), self.iter)

    def _log_train(self, window: dict[str, float]) -> None:
        n = window.pop("n")
        good = n - window.pop("skipped", 0.0)
        if self.world_size > 1:  # average the losses over processes (same terms on every rank)
            keys = sorted(k for k in window if k.startswith("loss"))
            if keys:
                vals = torch.tensor([window[k] for k in keys], dtype=torch.float64, device=self.device)
                dist.all_reduce(vals)
                window.update(zip(keys, (vals / self.world_size).tolist()))
        if not self.is_main:
            return
        record = {"type": "train", "iter": self.iter, "epoch": self.epoch}
        for key in ("loss", "loss_cls", "loss_bbox", "loss_iou", "lr", "grad_norm"):
            value = window[key] / good if good else None
            record[key] = value if value is not None and math.isfinite(value) else None  # fp16: scaler overflow
        record.update(time=window["time"] / n, data_time=window["data_time"] / n,
                      memory_mb=round(_memory_mb(self.device), 1), skipped_steps=self.skipped_steps)
        self._append_log(record)
        if self._writer is not None:
            for key in ("loss", "loss_cls", "loss_bbox", "loss_iou", "lr", "grad_norm", "time"):
                if record[key] is not None:
                    self._writer.add_scalar(f"train/{key}", record[key], self.iter)

    def _append_log(self, record: dict) -> None:
        with open(self.output_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _finish(self) -> None:
        if not self.is_main:
            return
        save_checkpoint(model_checkpoint(self.model, self.cfg), self.output_dir / "model_final.pth")
        metrics = {k: v for k, v in self.metrics.items() if k not in ("iter", "epoch")}
        (self.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        if (self.output_dir / "log.jsonl").exists():
            from ..visualize import plot_training_curves

            plot_training_curves(self.output_dir / "log.jsonl", self.output_dir / "curves.png")
        log.info("done: %s (%d steps skipped)", self.output_dir / "model_final.pth", self.skipped_steps)

    def _show_progress(self) -> bool:
        return self.progress and self.is_main and sys.stderr.isatty()

    def _progress_bar(self):
        from tqdm import tqdm

        return tqdm(total=self.max_iters, initial=self.iter, disable=not self._show_progress(), dynamic_ncols=True, unit="it")

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.output_dir / "tensorboard"))

    # ---------------------------------------------------------------- checkpoints, resume, stop
    def _save(self) -> None:
        if self.iter == self.last_saved_iter:
            return
        self.last_saved_iter = self.iter
        if not self.is_main:
            return
        state = {
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "iter": self.iter, "iter_in_epoch": self.iter_in_epoch,
            "skipped_steps": self.skipped_steps, "bad_in_row": self.bad_in_row, "metrics": self.metrics,
            "rng": rng_state(),
        }
        sleeper = slow_save(self.iter)
        if sleeper is not None:
            state["_fault_injection"] = sleeper
        path = checkpoint_path(self.ckpt_dir, self.iter)
        save_checkpoint(model_checkpoint(self.model, self.cfg, **state), path)
        prune(self.ckpt_dir, self.cfg.train.keep_checkpoints)
        log.debug("wrote %s", path)

    def _resume(self) -> None:
        found = newest_good(self.ckpt_dir, self.model, clean=self.is_main)
        if found is None:
            log.warning("no usable checkpoint in %s: starting from scratch", self.ckpt_dir)
            return
        path, ckpt = found
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.iter, self.iter_in_epoch = ckpt["epoch"], ckpt["iter"], ckpt["iter_in_epoch"]
        self.skipped_steps, self.bad_in_row = ckpt["skipped_steps"], ckpt["bad_in_row"]
        self.metrics = dict(ckpt.get("metrics") or {})
        self.last_saved_iter = self.iter
        set_rng_state(ckpt["rng"])
        if self.iter_in_epoch >= self.iters_per_epoch:
            raise ConfigError(f"{path} was written with another batch size or dataset ({self.iter_in_epoch} iterations into an epoch of {self.iters_per_epoch}); resume with the same data and batch size")
        log_file = self.output_dir / "log.jsonl"
        if self.is_main and log_file.exists():  # drop what the interrupted run logged after the checkpoint
            lines = [x for x in log_file.read_text().splitlines() if x.strip() and json.loads(x).get("iter", 0) <= self.iter]
            log_file.write_text("".join(x + "\n" for x in lines))
        if self.is_main:
            log.info("resumed from %s (epoch %d, iteration %d)", path, self.epoch, self.iter)

    def _stop(self) -> None:
        self._save()
        if self.world_size > 1:
            dist.barrier()
        signum = self.signals.signum
        raise TrainingInterrupted(
            signum, f"{signal.Signals(signum).name}: stopped at iteration {self.iter}; checkpoint in {self.ckpt_dir}; continue with `resume`"
        )
