"""Checkpoints: our format and MMDetection's, the published zoo, downloads, loading a model,
starting a training run from a whole detector (``finetune``)."""

from .download import download, resolve_weights
from .files import (
    FORMAT,
    CheckpointError,
    check_thresholds_target,
    model_checkpoint,
    read_checkpoint,
    save_checkpoint,
    store_score_thresholds,
)
from .finetune import InitReport, Pretrained, init_from_checkpoint, match_classes, pretrained_config, read_pretrained
from .load import load_model, load_state_strict
from .mmdet import convert_mmdet_state_dict
from .zoo import COCO_CATEGORY_IDS, COCO_CLASS_NAMES, ZOO

__all__ = [
    "FORMAT",
    "CheckpointError",
    "read_checkpoint",
    "save_checkpoint",
    "model_checkpoint",
    "load_model",
    "store_score_thresholds",
    "check_thresholds_target",
    "load_state_strict",
    "convert_mmdet_state_dict",
    "download",
    "resolve_weights",
    "ZOO",
    "COCO_CLASS_NAMES",
    "COCO_CATEGORY_IDS",
    "init_from_checkpoint",
    "InitReport",
    "Pretrained",
    "read_pretrained",
    "pretrained_config",
    "match_classes",
]
