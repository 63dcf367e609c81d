"""Faults injected through ``Trainer(hooks=...)``: NaN losses at chosen iterations, a stop signal
delivered during a chosen iteration, and a checkpoint whose writing hangs (so that a test can kill
the process while the file is half written)."""

from __future__ import annotations

import os
import signal
import time
from collections import OrderedDict
from typing import Any, Optional

import torch

from sparse_rcnn.engine.faults import TrainingHooks


class NanAt(TrainingHooks):
    """Multiply the loss by NaN at the iterations named by ``"3,5-7,10-"``: {3, 5, 6, 7} and every
    one from 10 on (numbered from 1, as in the log and the checkpoint names)."""

    def __init__(self, spec: str) -> None:
        self.single: set[int] = set()
        self.open_from: Optional[int] = None
        for part in filter(None, (p.strip() for p in spec.split(","))):
            lo, dash, hi = part.partition("-")
            if dash and not hi:
                self.open_from = int(lo) if self.open_from is None else min(self.open_from, int(lo))
            else:
                self.single.update(range(int(lo), int(hi) + 1) if dash else [int(lo)])

    def loss(self, iteration: int, loss: torch.Tensor) -> torch.Tensor:
        hit = iteration in self.single or (self.open_from is not None and iteration >= self.open_from)
        return loss * float("nan") if hit else loss


class SignalAt(TrainingHooks):
    """The process sends itself ``signum`` during iteration ``iteration`` (from its loss hook), so a
    stop request lands at a known step instead of whenever a watching test gets to it."""

    def __init__(self, iteration: int, signum: int = signal.SIGTERM) -> None:
        self.iteration, self.signum = iteration, signum

    def loss(self, iteration: int, loss: torch.Tensor) -> torch.Tensor:
        if iteration == self.iteration:
            os.kill(os.getpid(), self.signum)
        return loss


class _SlowToPickle:
    """Pickling this sleeps, which holds ``save_checkpoint`` mid-write (its temporary file exists,
    the checkpoint does not yet). Unpickles to an empty OrderedDict."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self):
        time.sleep(self.seconds)
        return (OrderedDict, ())


class SlowSave(TrainingHooks):
    """Iteration ``iteration``'s checkpoint takes ``seconds`` to write."""

    def __init__(self, iteration: int, seconds: float = 60.0) -> None:
        self.iteration, self.seconds = iteration, seconds

    def checkpoint_extra(self, iteration: int) -> dict[str, Any]:
        return {"_fault_injection": _SlowToPickle(self.seconds)} if iteration == self.iteration else {}


def with_hooks(trainer_class, hooks: TrainingHooks):
    """A Trainer class that always gets ``hooks`` (to replace the one a command builds)."""

    class Faulty(trainer_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, hooks=hooks, **kwargs)

    return Faulty
