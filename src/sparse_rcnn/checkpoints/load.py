"""Build a model from a checkpoint: ours (config inside) or MMDetection's (config by name)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional, Union

import torch
from torch import nn

from ..config import Config, ConfigError, config_from_dict, load_config
from .download import resolve_weights
from .files import CheckpointError, read_checkpoint
from .mmdet import convert_mmdet_state_dict, infer_mmdet_config, is_mmdet_checkpoint, mmdet_class_names

log = logging.getLogger(__name__)


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load every key, or raise one error listing missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                parts.append(f"{title} ({len(items)}): {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}")
        raise CheckpointError(f"{source} does not fit this model architecture; " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_model(name: Optional[str] = None, weights: Optional[str] = None, *, device: Union[str, torch.device] = "cpu"):
    """Build a model and load weights: ours (config inside) or MMDetection's (config by name)."""
    from ..models import build_model

    if name is None and weights is None:
        raise CheckpointError("give a model name, a checkpoint, or both")
    ckpt = read_checkpoint(resolve_weights(weights, name))
    if is_mmdet_checkpoint(ckpt):
        base = load_config(name) if name else Config()
        cfg = infer_mmdet_config(ckpt["state_dict"], base)
        if name and cfg.model != base.model:
            diff = [
                f.name
                for f in dataclasses.fields(base.model)
                if getattr(cfg.model, f.name) != getattr(base.model, f.name)
            ]
            raise CheckpointError(
                f"checkpoint does not fit {name!r}: it differs in {', '.join(diff)}; pick the matching `model`"
            )
        state = convert_mmdet_state_dict(ckpt["state_dict"])
        class_names = mmdet_class_names(ckpt)
        thresholds = None
    else:
        try:
            cfg = config_from_dict(ckpt["config"])
        except ConfigError as e:
            raise CheckpointError(f"checkpoint {weights!r} has a config this version cannot use: {e}") from None
        if name and name != cfg.name:
            log.warning("model %s ignored: the checkpoint carries its own config (%s)", name, cfg.name)
        state, class_names = ckpt["model"], ckpt.get("class_names")
        thresholds = ckpt.get("score_thresholds")  # chosen by `evaluation.choose_thresholds`, if any
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained_backbone=False))
    if class_names is not None and len(class_names) != cfg.model.num_classes:
        class_names = None
    model = build_model(cfg.model, class_names)
    load_state_strict(model, state, source=str(weights or name))
    model.config = cfg
    model.score_thresholds = thresholds
    return model.to(device).eval()
