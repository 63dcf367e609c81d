"""The builders: a ``SparseRCNN`` from a ``ModelConfig`` (the only place that reads one), with its
backbone's ImageNet weights when asked, and a model from a checkpoint (ours, config inside, or
MMDetection's, config by name): torchvision's builder pattern."""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional, Sequence, Union

import torch

from ..checkpoints import (
    CheckpointError,
    convert_mmdet_state_dict,
    infer_mmdet_config,
    is_mmdet_checkpoint,
    load_state_strict,
    mmdet_class_names,
    pretrained_state_dict,
    read_checkpoint,
    resolve_weights,
)
from ..config import Config, ConfigError, ModelConfig, config_from_dict, load_config
from .backbone import RESNET_WEIGHTS, STRIDES, ResNetFPN
from .criterion import SetCriterion
from .head import DynamicStage
from .matcher import HungarianMatcher
from .pooler import MultiLevelRoIAlign
from .postprocess import TopKPostProcess
from .sparse_rcnn import ImageBatcher, SparseRCNN

log = logging.getLogger(__name__)


def _imagenet_weights(cfg: ModelConfig) -> Optional[dict[str, torch.Tensor]]:
    """The backbone's ImageNet weights when ``cfg.pretrained_backbone``: ``cfg.backbone_weights`` (a
    local copy), else downloaded once into the torch hub cache (one-line error offline)."""
    if not cfg.pretrained_backbone or cfg.backbone not in RESNET_WEIGHTS:  # ResNetFPN names the choices
        return None
    return pretrained_state_dict(RESNET_WEIGHTS[cfg.backbone].url, cfg.backbone_weights)


def build_model(cfg: ModelConfig, class_names: Optional[Sequence[str]] = None) -> SparseRCNN:
    """The only place that reads a ``ModelConfig``: a ``SparseRCNN`` for ``class_names`` (default
    ``"0"``, ``"1"``, ...), on the CPU, in training mode."""
    if class_names is not None and len(class_names) != cfg.num_classes:
        raise ValueError(f"{len(class_names)} class names for num_classes={cfg.num_classes}")
    dim = cfg.fpn_channels
    matcher = HungarianMatcher(
        class_weight=cfg.class_weight,
        l1_weight=cfg.l1_weight,
        giou_weight=cfg.giou_weight,
        focal_alpha=cfg.focal_alpha,
        focal_gamma=cfg.focal_gamma,
    )
    return SparseRCNN(
        backbone=ResNetFPN(
            depth_name=cfg.backbone,
            out_channels=dim,
            norm=cfg.norm,
            frozen_stages=cfg.frozen_stages,
            body_weights=_imagenet_weights(cfg),
        ),
        stages=[
            DynamicStage(
                num_classes=cfg.num_classes,
                dim=dim,
                num_heads=cfg.num_heads,
                ffn_dim=cfg.ffn_dim,
                dynamic_dim=cfg.dynamic_dim,
                pooler_size=cfg.pooler_size,
                num_cls_fcs=cfg.num_cls_fcs,
                num_reg_fcs=cfg.num_reg_fcs,
            )
            for _ in range(cfg.num_stages)
        ],
        pooler=MultiLevelRoIAlign(strides=STRIDES, output_size=cfg.pooler_size),
        batcher=ImageBatcher(mean=cfg.pixel_mean, std=cfg.pixel_std, size_divisor=cfg.size_divisor),
        criterion=SetCriterion(
            num_classes=cfg.num_classes,
            matcher=matcher,
            class_weight=cfg.class_weight,
            l1_weight=cfg.l1_weight,
            giou_weight=cfg.giou_weight,
            focal_alpha=cfg.focal_alpha,
            focal_gamma=cfg.focal_gamma,
        ),
        postprocess=TopKPostProcess(max_per_image=cfg.max_per_image or cfg.num_proposals),
        num_proposals=cfg.num_proposals,
        dim=dim,
        test_scale=cfg.test_scale,
        class_names=class_names,
    )


def load_model(
    name: Optional[str] = None, weights: Optional[str] = None, *, device: Union[str, torch.device] = "cpu"
) -> SparseRCNN:
    """Build a model and load weights: ours (config inside) or MMDetection's (config by name)."""
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
