"""Checkpoints: our format and MMDetection's, the published zoo, downloads (the only place anything
is downloaded), strict state-dict loading, starting a training run from a whole detector
(``finetune``). Models are built from them one layer up, in ``models.build``."""

from .download import download, pretrained_state_dict, resolve_weights
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
from .mmdet import convert_mmdet_state_dict, infer_mmdet_config, is_mmdet_checkpoint, mmdet_class_names
from .state_dict import load_state_strict
from .zoo import COCO_CATEGORY_IDS, COCO_CLASS_NAMES, ZOO

__all__ = [
    "FORMAT",
    "CheckpointError",
    "read_checkpoint",
    "save_checkpoint",
    "model_checkpoint",
    "store_score_thresholds",
    "check_thresholds_target",
    "load_state_strict",
    "convert_mmdet_state_dict",
    "infer_mmdet_config",
    "is_mmdet_checkpoint",
    "mmdet_class_names",
    "pretrained_state_dict",
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
