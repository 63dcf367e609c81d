"""The model a training run starts from: freshly built (ImageNet backbone or nothing), or a whole
detector's weights on the training data's classes (``checkpoints.finetune``), with the parts that
``train.freeze`` names taken out of training."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional, Sequence, Union, cast

import torch
from torch import nn

from ..checkpoints import InitReport, Pretrained, init_from_checkpoint
from ..config import ModelConfig
from ..models import build_model
from ..models.backbone import ResNetFPN

log = logging.getLogger(__name__)

FREEZE = {"none": (), "backbone": ("body",), "backbone+fpn": ("body", "fpn")}


def build_initial_model(
    model_cfg: ModelConfig,
    class_names: Sequence[str],
    *,
    init_weights: Union[str, Path, Pretrained, None] = None,
    class_map: Optional[dict[str, str]] = None,
    freeze_parts: str = "none",
    resuming: bool = False,
    device: Union[str, torch.device] = "cpu",
) -> tuple[nn.Module, Optional[InitReport]]:
    """Build the model of ``model_cfg`` (``models.build_model``) for ``class_names``; load
    ``init_weights`` (a zoo name, file, URL or ``Pretrained``; ``class_map``: training class ->
    checkpoint class beside same-name matches) unless the run resumes from its own checkpoint;
    freeze ``freeze_parts`` (a key of ``FREEZE``). Returns the model (on ``device``, train mode) and
    what loading did (None when nothing was loaded)."""
    report = None
    if init_weights is not None and resuming:
        log.info(
            "resuming this run's own checkpoint: initial weights %s not loaded (resume wins)",
            getattr(init_weights, "source", init_weights),
        )
    elif init_weights is not None:
        model_cfg = dataclasses.replace(model_cfg, pretrained_backbone=False)
    model = build_model(model_cfg, class_names)
    if init_weights is not None and not resuming:
        report = init_from_checkpoint(model, init_weights, class_map=class_map)
        for line in report.lines():
            log.info("%s", line)
    frozen = freeze(model, freeze_parts)
    if frozen:
        log.info("train.freeze=%s: %d parameter tensors are not trained", freeze_parts, frozen)
    return model.to(device).train(), report


def freeze(model: nn.Module, what: str) -> int:
    """Take ``what`` (a key of ``FREEZE``) out of training: its parameters get no gradient (so the
    optimiser leaves them alone) and a frozen backbone keeps its BatchNorm statistics. Returns the
    number of parameter tensors frozen (the model's own ``frozen_stages`` count too)."""
    parts = FREEZE[what]
    for part in parts:
        for p in getattr(model.backbone, part).parameters():
            p.requires_grad_(False)
    if "body" in parts:
        backbone = cast(ResNetFPN, model.backbone)
        backbone.freeze_bn_stats = True  # ResNetFPN.train keeps its BatchNorm layers in eval mode
    return sum(1 for part in parts for _ in getattr(model.backbone, part).parameters())
