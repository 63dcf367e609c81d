"""Checkpoint files: reading with clear errors, our format, atomic writes.

Our format is a dict ``{"format": "sparse-rcnn", "version": 1, "config": <resolved config>,
"class_names": [...], "model": state_dict}`` plus, for training checkpoints, the trainer's state.
MMDetection checkpoints (``{"meta", "state_dict"}``, v2 or v3) are read here too and converted by
``checkpoints.mmdet``; loading into a model (``checkpoints.state_dict``) is strict and any mismatch is
reported key by key.
"""

from __future__ import annotations

import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Union, cast

import torch
from torch import nn

from ..common import atomic_write
from ..config import Config
from .pickled_globals import pickled_globals

FORMAT = "sparse-rcnn"
log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, downloaded or does not fit the model; the message says why."""


def read_checkpoint(path: Union[str, Path]) -> dict:
    """torch.load with a clear error for missing, truncated or foreign files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory; pass the .pth file inside it")
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": the error below says what matters
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        text = str(e)
        # torch names the refused global as "Unsupported global: GLOBAL x.y" (a class it does not
        # allow) or "unsupported GLOBAL x.y whose module x is blocked" (os, subprocess, ...); a raw
        # pickle stops it earlier (an opcode it does not know), so its globals are read from the opcodes.
        culprit = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", text)
        names = culprit.group(1) if culprit else ", ".join(pickled_globals(path)[:3])
        if names:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds pickled Python objects ({names}) that safe loading "
                "refuses; if you trust it, re-save only its tensors/state_dict"
            ) from None
        detail = re.search(r"WeightsUnpickler error: \s*(.+)", text)
        reason = detail.group(1).splitlines()[0] if detail else text.split(". ")[0].splitlines()[0] if text else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r} is unreadable, truncated or not a PyTorch file ({type(e).__name__}: {reason})"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{str(path)!r} is not a Sparse R-CNN checkpoint (it holds a {type(ckpt).__name__})")
    if ckpt.get("format") == FORMAT:
        lacking = [k for k in ("config", "model") if not isinstance(ckpt.get(k), dict)]
        if lacking:
            raise CheckpointError(f"{str(path)!r} is an incomplete sparse-rcnn checkpoint (no {' or '.join(lacking)})")
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(
            f"{str(path)!r} is a bare state_dict without its config; save models with "
            "sparse_rcnn.checkpoints.model_checkpoint + save_checkpoint"
        )
    elif not isinstance(ckpt.get("state_dict"), dict):
        keys = ", ".join(map(str, list(ckpt)[:8]))
        raise CheckpointError(
            f"{str(path)!r} is not a Sparse R-CNN checkpoint (no 'state_dict' or sparse-rcnn 'model' entry; "
            f"it holds: {keys or 'nothing'})"
        )
    return ckpt


def save_checkpoint(obj: dict, path: Union[str, Path]) -> None:
    """Write atomically (``outputs.atomic_write``: temporary file, fsync, rename; the umask's mode).
    A killed writer leaves only a hidden ``.<name>.*.tmp`` beside ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as out:
        torch.save(obj, out.file)


def model_checkpoint(model: nn.Module, cfg: Config, **extra: Any) -> dict:
    return {
        "format": FORMAT,
        "version": 1,
        "config": cfg.to_dict(),
        "class_names": list(cast("list[str]", model.class_names)),  # a SparseRCNN's
        "model": model.state_dict(),
        **extra,
    }


def _thresholds_target(path: Optional[Union[str, Path]]) -> dict:
    """The checkpoint at ``path``, if it can take score thresholds: a local file of our format."""
    if not path or not Path(path).is_file():
        raise CheckpointError(
            f"score thresholds are stored in a local checkpoint file; pass its path as `weights` (got {path!r})"
        )
    ckpt = read_checkpoint(path)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is an MMDetection checkpoint, which cannot hold score thresholds: convert it to ours first "
            "(model_checkpoint + save_checkpoint, as `sparse-rcnn convert` does) and evaluate the converted file"
        )
    return ckpt


def store_score_thresholds(path: Union[str, Path], thresholds: dict) -> None:
    """Write chosen score thresholds (``evaluation.choose_thresholds``) into the checkpoint at
    ``path`` under ``score_thresholds``, keeping everything else; atomically. Our format only."""
    ckpt = _thresholds_target(path)
    previous = ckpt.get("score_thresholds")
    ckpt["score_thresholds"] = thresholds
    save_checkpoint(ckpt, path)
    if previous:
        log.info(
            "replaced the score thresholds of %s (global %.3f -> %.3f)",
            path,
            previous.get("global", float("nan")),
            thresholds["global"],
        )


def check_thresholds_target(path: Optional[Union[str, Path]]) -> None:
    """Fail before a long evaluation if ``path`` cannot take score thresholds (not our format, or
    its folder cannot be written: the file is replaced through a temporary file beside it)."""
    _thresholds_target(path)
    assert path is not None  # refused above
    try:
        with tempfile.TemporaryFile(dir=Path(path).parent):  # a real probe: root ignores modes, not ro mounts
            pass
    except OSError as e:
        raise CheckpointError(
            f"cannot store score thresholds in {str(path)!r}: its folder cannot be written ({e.strerror or e}); "
            "copy the checkpoint to a writable folder and pass that as `weights`"
        ) from None
