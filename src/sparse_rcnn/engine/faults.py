"""Training faults: non-finite steps, stop signals, and test-only fault injection switches.

A step whose loss or gradient is not finite is skipped everywhere (the decision is shared by all
processes, so DDP never waits on a rank that skipped); ``max_bad_steps`` in a row raise
``TrainingError``. SIGINT / SIGTERM only set a flag: the trainer finishes the step, writes a
checkpoint and raises ``TrainingInterrupted`` (the CLI exits 128 + signal: 130 / 143). A second
Ctrl-C stops at once.

Fault injection, read from the environment, inactive when unset; for tests only:

* ``SPARSE_RCNN_INJECT_NAN_AT="3,5-7,10-"``: multiply the loss by NaN at those iterations
  (numbered from 1, as in the log and the checkpoint names; ``10-`` = 10 and every later one);
* ``SPARSE_RCNN_FAULT_SLOW_SAVE="N:S"``: sleep S seconds (default 60) in the middle of writing
  iteration N's checkpoint, so that a test can kill the process while the file is being written.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from typing import Any, Optional

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. the loss diverged); the message says why and what to try."""


class TrainingInterrupted(Exception):
    """SIGINT / SIGTERM stopped the run after a checkpoint was written."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


def all_finite(value: torch.Tensor, world_size: int = 1) -> bool:
    """Whether ``value`` is finite on every process (the same answer everywhere)."""
    ok = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if world_size > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


class StopSignals:
    """Context manager: while active, SIGINT / SIGTERM set ``signum`` instead of killing the process."""

    def __init__(self, announce: bool = True) -> None:
        self.signum: Optional[int] = None
        self.announce = announce
        self._old: dict = {}
        self._pid = 0

    def __enter__(self) -> "StopSignals":
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._old[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a forked data loader worker (Ctrl-C reaches the whole group): ignore
            return
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum
        if self.announce:
            log.warning("%s received: stopping after this step", signal.Signals(signum).name)

    def requested(self, device: torch.device, world_size: int = 1) -> bool:
        """Whether any process got a signal (collective under DDP: call it on every rank)."""
        flag = torch.tensor([float(self.signum or 0)], device=device)
        if world_size > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.signum is None:
            self.signum = int(flag.item())
        return bool(flag.item())


class Iterations:
    """Iterations named by ``"3,5-7,10-"``: {3, 5, 6, 7} and every one from 10 on."""

    def __init__(self, spec: str) -> None:
        self.single: set[int] = set()
        self.open_from: Optional[int] = None
        for part in filter(None, (p.strip() for p in spec.split(","))):
            lo, dash, hi = part.partition("-")
            if dash and not hi:
                self.open_from = int(lo) if self.open_from is None else min(self.open_from, int(lo))
            else:
                self.single.update(range(int(lo), int(hi) + 1) if dash else [int(lo)])

    def __contains__(self, i: int) -> bool:
        return i in self.single or (self.open_from is not None and i >= self.open_from)


class SlowToPickle:
    """Pickling this sleeps, which holds ``save_checkpoint`` mid-write (its temporary file exists,
    the checkpoint does not yet). Unpickles to an empty OrderedDict."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self):
        time.sleep(self.seconds)
        return (OrderedDict, ())


def nan_iterations() -> Iterations:
    return Iterations(os.environ.get("SPARSE_RCNN_INJECT_NAN_AT", ""))


def slow_save(iteration: int) -> Optional[SlowToPickle]:
    """The sleeper to put into iteration ``iteration``'s checkpoint, if the switch names it."""
    spec = os.environ.get("SPARSE_RCNN_FAULT_SLOW_SAVE", "")
    if not spec:
        return None
    at, _, seconds = spec.partition(":")
    return SlowToPickle(float(seconds or 60)) if int(at) == iteration else None
