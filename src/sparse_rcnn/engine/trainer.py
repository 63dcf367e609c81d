"""Training (paper Sec. 4 "Implementation details", with MMDetection's recipe: SPEC "Training recipe").

The recipe (AdamW, clipping, warm-up and steps) is ``schedule``'s; one *iteration* is one optimiser
step (``step``), of ``train.accumulate`` batches per process.

Runs are exactly resumable: checkpoints hold the model, optimiser, AMP scaler, counters and RNG
states (``train_state``); the data order and augmentation are functions of (seed, epoch, index),
and the learning rate a pure function of (iteration, epoch), so resuming ends with the same
parameters as an uninterrupted run. Non-finite steps and signals are handled as ``faults`` says.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

from ..checkpoints import model_checkpoint, save_checkpoint
from ..common import Processes, check_output_dir, init_process_group, pick_device, wrap_model
from ..config import Config, ConfigError, check_values
from .faults import StopSignals, TrainingHooks, TrainingInterrupted
from .initial_model import build_initial_model
from .recipe import build_step
from .run_lock import RunLock
from .run_log import RunLog, add_to_window
from .train_data import batch_sampler, epoch_batches, training_datasets
from .train_state import RunCheckpoints, list_checkpoints, seed_everything
from .validation import EvaluationStopped, validate

log = logging.getLogger(__name__)


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
        self.train_dataset, self.val_dataset, self.cfg = training_datasets(
            cfg, train_dataset, val_dataset, self.procs.world_size
        )
        cfg, class_names = self.cfg, list(self.train_dataset.class_names)
        t = cfg.train
        seed_everything(t.seed)
        self.model, self.init_report = build_initial_model(
            cfg.model,
            class_names,
            init_weights=init_weights,
            class_map=t.class_map,
            freeze_parts=t.freeze,
            device=self.device,
            resuming=resume and bool(list_checkpoints(self.ckpt_dir)),
        )
        net = wrap_model(self.model, self.device, self.procs)
        self.optimizer, self.scaler, self.step = build_step(self.model, net, t, self.device, self.procs, self.hooks)
        self.sampler = batch_sampler(self.train_dataset, cfg.data.batch_size, seed=t.seed, procs=self.procs)
        self.batches_per_epoch = len(self.sampler)
        self.iters_per_epoch = -(-self.batches_per_epoch // t.accumulate)
        self.max_iters = t.max_iters if t.max_iters is not None else t.epochs * self.iters_per_epoch
        self.iter, self.epoch, self.iter_in_epoch = 0, 0, 0
        self.checkpoints = RunCheckpoints(
            self.ckpt_dir, self.model, cfg, self.optimizer, self.scaler, keep=t.keep_checkpoints, writer=self.is_main
        )
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
            _log_start(self.cfg, self.procs.world_size, self.max_iters, self.iters_per_epoch, self.output_dir)
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
        batches = epoch_batches(
            self.train_dataset,
            self.sampler,
            self.epoch,
            start=self.iter_in_epoch * k,
            workers=self.cfg.data.workers,
            device=self.device,
        )
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
            add_to_window(window, stats, data_time=t1 - t0, time=time.perf_counter() - t0)
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
        """COCO box AP on the validation set (``validation.validate``); a signal stops it at the next batch."""
        if self.val_dataset is None:
            return
        stop = None if self.procs.distributed else (lambda: self.signals.signum is not None)
        try:
            metrics, self.val_results = validate(
                self.model,
                self.val_dataset,
                self.cfg.data,
                device=self.device,
                progress=self._show_progress,
                stop=stop,
                classwise=classwise,
            )
        except EvaluationStopped:
            self._stop()
        self.metrics = {**metrics, "iter": self.iter, "epoch": self.epoch}
        self.run_log.val(self.iter, self.epoch, metrics)

    def _save(self) -> None:
        counters = dict(epoch=self.epoch, iter_in_epoch=self.iter_in_epoch, metrics=self.metrics, **self.step.state())
        self.checkpoints.save(self.iter, {**counters, **self.hooks.checkpoint_extra(self.iter)})

    def _resume(self) -> None:
        found = self.checkpoints.resume(self.iters_per_epoch)
        if found is None:
            return
        path, ckpt = found
        self.epoch, self.iter, self.iter_in_epoch = ckpt["epoch"], ckpt["iter"], ckpt["iter_in_epoch"]
        self.step.load_state(ckpt)
        self.metrics = dict(ckpt.get("metrics") or {})
        self.run_log.keep_until(self.iter)
        if self.is_main:
            log.info("resumed from %s (epoch %d, iteration %d)", path, self.epoch, self.iter)

    def _stop(self) -> None:
        self._save()
        if self.procs.distributed:
            torch.distributed.barrier()
        assert self.signals.signum is not None  # called once a signal came
        raise TrainingInterrupted.at(self.signals.signum, self.iter, self.ckpt_dir)


def _log_start(cfg: Config, world_size: int, max_iters: int, iters_per_epoch: int, output_dir: Path) -> None:
    images = cfg.data.batch_size * world_size * cfg.train.accumulate
    log.info(
        "training %s: %d iterations (%d per epoch, %d images/step over %d process(es)) -> %s",
        cfg.name,
        max_iters,
        iters_per_epoch,
        images,
        world_size,
        output_dir,
    )
