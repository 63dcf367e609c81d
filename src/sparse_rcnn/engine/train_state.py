"""Training checkpoints on disk: naming, pruning, RNG state, and the newest good one to resume from.

A training checkpoint is ``checkpoints.model_checkpoint(model, cfg, **state)`` with the trainer's
state (optimiser, AMP scaler, counters, RNG states) next to the model, written atomically by
``checkpoints.save_checkpoint`` as ``<dir>/iter_XXXXXXX.pth``. Resuming takes the newest one that
reads and fits the model; an unreadable one (torn by a crash or a full disk, or foreign) is
reported and the previous one is used. Temporary files of a writer that was killed are removed.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Optional, cast

import numpy as np
import torch
from torch import nn

from ..checkpoints import CheckpointError, load_state_strict, model_checkpoint, read_checkpoint, save_checkpoint
from ..config import Config, ConfigError

log = logging.getLogger(__name__)
_NAME = re.compile(r"^iter_(\d+)\.pth$")


def checkpoint_path(folder: Path, iteration: int) -> Path:
    return folder / f"iter_{iteration:07d}.pth"


def list_checkpoints(folder: Path) -> list[Path]:
    """``iter_*.pth`` files, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def prune(folder: Path, keep: int, *, newest: int) -> None:
    """Keep the ``keep`` newest checkpoints up to iteration ``newest`` (the one just written);
    higher-numbered ones (not resumable: see ``newest_good``'s warnings) are left alone."""
    # list_checkpoints lists only names _NAME matches
    mine = [p for p in list_checkpoints(folder) if int(cast("re.Match[str]", _NAME.match(p.name)).group(1)) <= newest]
    for old in mine[max(keep, 1) :]:
        old.unlink(missing_ok=True)


def remove_temporaries(folder: Path, name: str) -> None:
    """Remove the temporary files a writer of ``folder/name`` left when it was killed."""
    for tmp in folder.glob(f".{name}.*.tmp") if folder.is_dir() else ():
        log.warning("removing %s, left by a run killed while writing it", tmp.name)
        tmp.unlink(missing_ok=True)


def write_training_checkpoint(folder: Path, ckpt: dict, *, iteration: int, keep: int) -> Path:
    """Write ``folder/iter_XXXXXXX.pth`` atomically, then keep only the newest ``keep`` up to it."""
    path = checkpoint_path(folder, iteration)
    save_checkpoint(ckpt, path)
    prune(folder, keep, newest=iteration)
    log.debug("wrote %s", path)
    return path


def restore(ckpt: dict, *, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Optimiser, AMP scaler and RNG states of a training checkpoint (the model is loaded by
    ``newest_good``)."""
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])


def rng_state() -> dict:
    """torch, CUDA, numpy and python RNG states, in types ``torch.load(weights_only=True)`` accepts."""
    # the legacy tuple (get_state's default); numpy's stubs return it in a union with the dict form
    state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    name, keys, pos, has_gauss, gauss = state
    return {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def seed_everything(seed: int) -> None:
    """torch, numpy and python RNGs from ``seed`` (a run's start; resuming restores their states)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def newest_good(folder: Path, model: nn.Module, *, clean: bool = True) -> Optional[tuple[Path, dict]]:
    """Load the newest usable checkpoint of ``folder`` into ``model``; returns (path, checkpoint)
    or None. ``clean`` removes the temporary files of a killed writer (do it on one process)."""
    if clean and folder.is_dir():
        for tmp in folder.glob(".iter_*.tmp"):
            log.warning("removing %s, left by a run killed while writing it", tmp.name)
            tmp.unlink(missing_ok=True)
    for path in list_checkpoints(folder):
        try:
            ckpt = read_checkpoint(path)
            if "optimizer" not in ckpt or "iter" not in ckpt:
                raise CheckpointError(f"{path} holds no trainer state")
            load_state_strict(model, ckpt["model"], source=str(path))
        except CheckpointError as e:
            log.warning("%s; trying the previous checkpoint", e)
            continue
        return path, ckpt
    return None


def checkpoint_to_resume(folder: Path, model: nn.Module, *, clean: bool = True) -> Optional[tuple[Path, dict]]:
    """``newest_good`` for a resume: None when ``folder`` holds no checkpoint yet (nothing to
    resume: the run starts), CheckpointError when it holds some but none can be resumed (never a
    silent restart over them). ``clean`` also removes a killed ``model_final.pth`` writer's file."""
    if clean:
        remove_temporaries(folder.parent, "model_final.pth")
    if not list_checkpoints(folder):
        log.info("no checkpoint in %s yet: starting from the beginning", folder)
        return None
    found = newest_good(folder, model, clean=clean)
    if found is None:
        raise CheckpointError(
            f"no checkpoint in {folder} can be resumed (unreadable, or written with another config: "
            "see the warnings above); start anew with another `output_dir`"
        )
    return found


class RunCheckpoints:
    """The checkpoints of one run in ``folder``: ``save`` writes the model, optimiser, scaler, RNG
    states and the given counters (once per iteration, on the writing process only, the newest
    ``keep`` kept); ``resume`` restores the newest good one."""

    def __init__(
        self,
        folder: Path,
        model: nn.Module,
        cfg: Config,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        *,
        keep: int,
        writer: bool,
    ) -> None:
        self.folder, self.model, self.cfg, self.optimizer, self.scaler = folder, model, cfg, optimizer, scaler
        self.keep, self.writer, self.last_saved_iter = keep, writer, -1

    def save(self, iteration: int, counters: dict) -> None:
        """Checkpoint iteration ``iteration`` with ``counters`` (epoch, metrics, ...), unless saved already."""
        if iteration == self.last_saved_iter:
            return
        self.last_saved_iter = iteration
        if not self.writer:
            return
        state = dict(optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(), rng=rng_state())
        ckpt = model_checkpoint(self.model, self.cfg, iter=iteration, **counters, **state)
        write_training_checkpoint(self.folder, ckpt, iteration=iteration, keep=self.keep)

    def resume(self, iters_per_epoch: int) -> Optional[tuple[Path, dict]]:
        """Restore the newest good checkpoint into the model, optimiser and scaler: (path, checkpoint),
        or None when there is none yet. Refuses one written with another epoch length."""
        found = checkpoint_to_resume(self.folder, self.model, clean=self.writer)
        if found is None:
            return None
        path, ckpt = found
        restore(ckpt, optimizer=self.optimizer, scaler=self.scaler)
        if ckpt["iter_in_epoch"] >= iters_per_epoch:
            raise ConfigError(
                f"{path} was written with another batch size or dataset ({ckpt['iter_in_epoch']} iterations "
                f"into an epoch of {iters_per_epoch}); resume with the same data and batch size"
            )
        self.last_saved_iter = ckpt["iter"]
        return path, ckpt
