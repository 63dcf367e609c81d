"""Training faults: non-finite steps, stop signals, and the hooks tests inject faults through.

A step whose loss or gradient is not finite is skipped everywhere (the decision is shared by all
processes, so DDP never waits on a rank that skipped); ``max_bad_steps`` in a row raise
``TrainingError``. SIGINT / SIGTERM only set a flag: the trainer finishes the step, writes a
checkpoint and raises ``TrainingInterrupted`` (the CLI exits 128 + signal: 130 / 143). A second
Ctrl-C stops at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
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

    @classmethod
    def at(cls, signum: int, iteration: int, ckpt_dir: Path) -> TrainingInterrupted:
        """The interruption at ``iteration``, its checkpoint in ``ckpt_dir``."""
        name = signal.Signals(signum).name
        return cls(
            signum, f"{name}: stopped at iteration {iteration}; checkpoint in {ckpt_dir}; continue with `resume`"
        )


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


class TrainingHooks:
    """Points where a test can inject a fault into a real run; these defaults change nothing.

    ``Trainer(..., hooks=...)`` takes a subclass (tests/fault_injection.py has the ones the tests use).
    """

    def loss(self, iteration: int, loss: torch.Tensor) -> torch.Tensor:
        """The loss of ``iteration`` (numbered from 1, as in the log) before backward."""
        return loss

    def checkpoint_extra(self, iteration: int) -> dict[str, Any]:
        """More entries for ``iteration``'s checkpoint (pickled while the file is written)."""
        return {}
