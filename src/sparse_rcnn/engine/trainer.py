"""Training (paper Sec. 4 "Implementation details", with MMDetection's recipe: SPEC "Training recipe").

AdamW (lr 2.5e-5, weight decay 1e-4 on every parameter), gradient clipping at L2 norm 1, linear
warm-up over 500 iterations from x0.001, then x0.1 at each ``lr_steps`` epoch; batch 16 in total
(2 images x 8 GPUs). One *iteration* is one optimiser step; with ``train.accumulate = k`` it takes
k batches per process (``engine.step``).

Other batch sizes. The recipe is tuned for 16 images per step (``batch_size x processes x
accumulate``). AdamW is much less sensitive to the batch than SGD: first keep lr 2.5e-5 and use
``train.accumulate`` to reach 16 if memory allows. Otherwise linear scaling ``lr x B/16`` is a
starting point, not a guarantee, and the warm-up should cover about the same number of images
(``warmup_iters x 16/B``). Epoch-based steps need no change.

Runs are exactly resumable: checkpoints hold the model, optimiser, AMP scaler, counters and RNG
states (``train_state``); the data order and augmentation are functions of (seed, epoch, index),
and the learning rate a pure function of (iteration, epoch), so resuming ends with the same
parameters as an uninterrupted run. Non-finite steps and signals are handled as ``faults`` says.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoints import model_checkpoint, save_checkpoint
from ..config import Config, ConfigError, check_values
from ..data import build_datasets, collate
from ..data.sampler import GroupedBatchSampler
from ..outputs import check_output_dir
from .distributed import Processes, init_process_group, pick_device, wrap_model
from .faults import StopSignals, TrainingHooks, TrainingInterrupted
from .initial_model import build_initial_model
from .run_lock import RunLock
from .run_log import RunLog
from .schedule import build_optimizer
from .step import TrainStep
from .train_state import (
    checkpoint_to_resume,
    list_checkpoints,
    restore,
    rng_state,
    seed_everything,
    write_training_checkpoint,
)

log = logging.getLogger(__name__)


def _datasets(cfg: Config, train: Any, val: Any, world_size: int) -> tuple[Any, Any, Config]:
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


class Trainer:
    """Trains a Sparse R-CNN from ``cfg`` into ``output_dir``: ``log.jsonl`` and TensorBoard (``run_log``),
    ``checkpoints/iter_XXXXXXX.pth`` (every ``checkpoint_interval`` iterations and each epoch end; the
    last ``keep_checkpoints`` kept), ``model_final.pth``, ``metrics.json``, ``curves.png``. Under
    ``torchrun`` each process trains on its shard; only rank 0 writes. ``train_dataset`` /
    ``val_dataset`` replace ``cfg.data``'s (any dataset with ``class_names``, ``aspect_ratios()`` and
    ``(image, target)`` items). ``hooks``: fault injection for tests (``faults.TrainingHooks``).
    ``init_weights``: see ``initial_model`` (``resume`` wins)."""

    def __init__(
        self,
        cfg: Config,
        *,
        output_dir: str | Path,
        resume: bool = False,
        device: Optional[str] = None,
        progress: bool = True,
        train_dataset: Any = None,
        val_dataset: Any = None,
        hooks: Optional[TrainingHooks] = None,
        init_weights: Any = None,
    ) -> None:
        check_values(cfg)  # a Config built in Python has not been through load_config's checks
        self.procs = Processes.from_env()
        self.device = pick_device(device, self.procs)
        self._owns_group = init_process_group(self.device, self.procs)
        self.is_main = self.procs.is_main
        self.output_dir = Path(output_dir)
        self.ckpt_dir = self.output_dir / "checkpoints"
        self._show_progress = progress and self.is_main and sys.stderr.isatty()
        self.hooks = hooks or TrainingHooks()

        self.train_dataset, self.val_dataset, self.cfg = _datasets(
            cfg, train_dataset, val_dataset, self.procs.world_size
        )
        cfg, class_names = self.cfg, list(self.train_dataset.class_names)
        t = cfg.train

        seed_everything(t.seed)
        self.model, self.init_report = build_initial_model(
            cfg,
            class_names,
            init_weights=init_weights,
            device=self.device,
            resuming=resume and bool(list_checkpoints(self.ckpt_dir)),
        )
        net = wrap_model(self.model, self.device, self.procs)
        self.optimizer = build_optimizer(self.model, lr=t.lr, weight_decay=t.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        self.step = TrainStep(self.model, net, self.optimizer, self.scaler, t, self.procs, self.hooks)
        self.sampler = GroupedBatchSampler(
            self.train_dataset.aspect_ratios(),
            cfg.data.batch_size,
            seed=t.seed,
            rank=self.procs.rank,
            world_size=self.procs.world_size,
        )
        self.batches_per_epoch = len(self.sampler)
        self.iters_per_epoch = -(-self.batches_per_epoch // t.accumulate)
        self.max_iters = t.max_iters if t.max_iters is not None else t.epochs * self.iters_per_epoch
        self.iter, self.epoch, self.iter_in_epoch, self.last_saved_iter = 0, 0, 0, -1
        self.metrics: dict[str, float] = {}
        self.signals = StopSignals(announce=self.is_main)
        self.run_log = RunLog(self.output_dir, enabled=self.is_main)
        # The first write to output_dir: after the model (and any backbone download) is built.
        self.lock = RunLock(check_output_dir(self.output_dir) if self.is_main else None)
        with self.lock.released_on_error():
            if resume:
                self._resume()
            elif list_checkpoints(self.ckpt_dir):
                raise ConfigError(
                    f"{self.ckpt_dir} already holds checkpoints; continue that run with `resume`, or choose "
                    "another `output_dir`"
                )

    @property
    def skipped_steps(self) -> int:
        return self.step.skipped_steps

    def fit(self) -> dict[str, float]:
        """Train to ``max_iters`` (or ``epochs``); return the last validation metrics ({} without val)."""
        try:
            with self.signals:
                return self._fit()
        finally:
            self.run_log.close()
            self.lock.release()
            if self._owns_group and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    def _fit(self) -> dict[str, float]:
        if self.is_main:
            self.run_log.open()
            images = self.cfg.data.batch_size * self.procs.world_size * self.cfg.train.accumulate
            log.info(
                "training %s: %d iterations (%d per epoch, %d images/step over %d process(es)) -> %s",
                self.cfg.name,
                self.max_iters,
                self.iters_per_epoch,
                images,
                self.procs.world_size,
                self.output_dir,
            )
        if self.init_report is not None and self.iter == 0:  # where the initial weights start, per class
            self.run_log.append(self.init_report.record())
            self._evaluate(classwise=True)
        bar = tqdm(
            total=self.max_iters, initial=self.iter, disable=not self._show_progress, dynamic_ncols=True, unit="it"
        )
        while self.iter < self.max_iters:
            if self._train_epoch(bar):  # a whole epoch done
                self._save()
                interval = self.cfg.train.eval_interval
                if interval and self.epoch % interval == 0 and self.iter < self.max_iters:
                    self._evaluate()
        bar.close()
        self._save()
        if self.is_main:  # before the final evaluation: its failure never costs the trained model
            save_checkpoint(model_checkpoint(self.model, self.cfg), self.output_dir / "model_final.pth")
        if self.val_dataset is not None and self.metrics.get("iter") != self.iter:
            self._evaluate()
        metrics = {k: v for k, v in self.metrics.items() if k not in ("iter", "epoch")}
        if self.is_main:
            self.run_log.finish(metrics)
            log.info("done: %s (%d steps skipped)", self.output_dir / "model_final.pth", self.skipped_steps)
        return metrics

    def _train_epoch(self, bar) -> bool:
        """Train to the end of the epoch (True) or to ``max_iters`` (False)."""
        k = self.cfg.train.accumulate
        self.sampler.set_epoch(self.epoch, start=self.iter_in_epoch * k)
        if hasattr(self.train_dataset, "set_epoch"):
            self.train_dataset.set_epoch(self.epoch)
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.sampler,
            collate_fn=collate,
            num_workers=self.cfg.data.workers,
            pin_memory=self.device.type == "cuda",
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
            stats = self.step(group, self.iter, self.epoch, self.device, self.ckpt_dir)
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
                self.step.log_window(window, self.run_log, self.iter, self.epoch, self.device)
                window = defaultdict(float)
            finished = self.iter_in_epoch == self.iters_per_epoch
            if finished:
                self.epoch, self.iter_in_epoch = self.epoch + 1, 0
            interval = self.cfg.train.checkpoint_interval
            if interval and self.iter % interval == 0:
                self._save()
            if self.signals.requested(self.device, self.procs.world_size):
                self._stop()
            if finished:
                return True
        return False

    def _evaluate(self, classwise: bool = False) -> None:
        """COCO box AP on the validation set; every process evaluates a shard (``evaluate`` gathers).
        A signal stops a single-process evaluation at the next batch (under DDP the ranks must agree)."""
        from ..evaluation import EvaluationStopped, evaluate

        if self.val_dataset is None:
            return
        stop = None if self.procs.distributed else (lambda: self.signals.signum is not None)
        try:
            metrics, self.val_results = evaluate(
                self.model,
                self.val_dataset,
                batch_size=self.cfg.data.batch_size,
                device=self.device,
                workers=self.cfg.data.workers,
                progress=self._show_progress,
                stop=stop,
                classwise=classwise,
            )
        except EvaluationStopped:
            self._stop()
        metrics = {k: float(v) for k, v in metrics.items()}
        self.metrics = {**metrics, "iter": self.iter, "epoch": self.epoch}
        if self.is_main:
            self.run_log.val(self.iter, self.epoch, metrics)
            log.info(
                "epoch %d iteration %d: bbox_mAP %.4f", self.epoch, self.iter, metrics.get("bbox_mAP", float("nan"))
            )

    def _save(self) -> None:
        if self.iter == self.last_saved_iter:
            return
        self.last_saved_iter = self.iter
        if not self.is_main:
            return
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "iter": self.iter,
            "iter_in_epoch": self.iter_in_epoch,
            **self.step.state(),
            "metrics": self.metrics,
            "rng": rng_state(),
            **self.hooks.checkpoint_extra(self.iter),
        }
        write_training_checkpoint(
            self.ckpt_dir,
            model_checkpoint(self.model, self.cfg, **state),
            iteration=self.iter,
            keep=self.cfg.train.keep_checkpoints,
        )

    def _resume(self) -> None:
        found = checkpoint_to_resume(self.ckpt_dir, self.model, clean=self.is_main)
        if found is None:
            return
        path, ckpt = found
        restore(ckpt, optimizer=self.optimizer, scaler=self.scaler)
        self.epoch, self.iter, self.iter_in_epoch = ckpt["epoch"], ckpt["iter"], ckpt["iter_in_epoch"]
        self.step.load_state(ckpt)
        self.metrics, self.last_saved_iter = dict(ckpt.get("metrics") or {}), self.iter
        if self.iter_in_epoch >= self.iters_per_epoch:
            raise ConfigError(
                f"{path} was written with another batch size or dataset ({self.iter_in_epoch} iterations "
                f"into an epoch of {self.iters_per_epoch}); resume with the same data and batch size"
            )
        self.run_log.keep_until(self.iter)
        if self.is_main:
            log.info("resumed from %s (epoch %d, iteration %d)", path, self.epoch, self.iter)

    def _stop(self) -> None:
        self._save()
        if self.procs.distributed:
            torch.distributed.barrier()
        signum = self.signals.signum
        raise TrainingInterrupted(
            signum,
            f"{signal.Signals(signum).name}: stopped at iteration {self.iter}; checkpoint in "
            f"{self.ckpt_dir}; continue with `resume`",
        )
