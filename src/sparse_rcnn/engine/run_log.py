"""What a training run writes for people: ``log.jsonl``, TensorBoard scalars, ``metrics.json`` and
``curves.png``. Only the main process writes; elsewhere every call does nothing."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..common import atomic_write
from ..visualize import plot_training_curves

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger(__name__)

TRAIN_KEYS = ("loss", "loss_cls", "loss_bbox", "loss_iou", "lr", "grad_norm")


class RunLog:
    """One JSON record per line in ``output_dir/log.jsonl``: ``{"type": "train", "iter", "epoch",
    losses, lr, grad_norm, time, data_time, memory_mb, skipped_steps}`` every ``log_interval``
    iterations, ``{"type": "val", metrics..., "iter", "epoch"}`` after each evaluation, and
    ``{"type": "init", ...}`` when the run starts from a detector checkpoint."""

    def __init__(self, output_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(output_dir) / "log.jsonl"
        self.enabled = enabled
        self._tensorboard = tensorboard and enabled
        self._writer: Optional[SummaryWriter] = None

    def open(self) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            self._writer = SummaryWriter(str(self.path.parent / "tensorboard"))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def train(self, iteration: int, epoch: int, means: dict[str, Optional[float]], **extra: float) -> None:
        """Averages over a logging window; None or non-finite values (fp16 overflow) are logged as null."""
        record: dict[str, Any] = {"type": "train", "iter": iteration, "epoch": epoch}
        for key in TRAIN_KEYS:
            value = means.get(key)
            record[key] = value if value is not None and math.isfinite(value) else None
        record.update(extra)
        self._append(record)
        for key in (*TRAIN_KEYS, "time"):
            self._scalar(f"train/{key}", record.get(key), iteration)

    def val(self, iteration: int, epoch: int, metrics: dict[str, float]) -> None:
        if self.enabled:
            log.info("epoch %d iteration %d: bbox_mAP %.4f", epoch, iteration, metrics.get("bbox_mAP", float("nan")))
        self._append({"type": "val", **metrics, "iter": iteration, "epoch": epoch})
        for key, value in metrics.items():
            self._scalar(f"val/{key}", value, iteration)

    def keep_until(self, iteration: int) -> None:
        """On resume: drop what an interrupted run logged after ``iteration``'s checkpoint, and a
        last line torn by a kill in mid-write."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: dropping a line that is not JSON (written when the run was killed)", self.path)
                continue
            if isinstance(record, dict) and record.get("iter", 0) <= iteration:
                kept.append(line)
        with atomic_write(self.path) as out:
            out.file.write("".join(x + "\n" for x in kept))

    def finish(self, metrics: dict[str, float]) -> None:
        """``metrics.json`` (the last validation metrics) and ``curves.png``."""
        if not self.enabled:
            return
        with atomic_write(self.path.parent / "metrics.json") as out:
            out.file.write(json.dumps(metrics, indent=1) + "\n")
        if self.path.exists():
            plot_training_curves(self.path, self.path.parent / "curves.png")

    def append(self, record: dict) -> None:
        """Any other record, e.g. the ``{"type": "init"}`` report of the initial weights."""
        self._append(record)

    def _append(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def _scalar(self, tag: str, value: Optional[float], step: int) -> None:
        if self._writer is not None and value is not None:
            self._writer.add_scalar(tag, float(value), step)


def add_to_window(window: dict[str, float], stats: dict[str, float], *, data_time: float, time: float) -> None:
    """Add one step's ``stats`` and times to a logging window's sums (``n`` counts the steps)."""
    for key, value in stats.items():
        window[key] += value
    window["data_time"] += data_time
    window["time"] += time
    window["n"] += 1
