"""The configuration's fields: frozen dataclasses whose defaults are the paper's (MMDetection's) numbers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional


class ConfigError(ValueError):
    """A config file, key or value is wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet50"  # resnet18 | resnet34 | resnet50 | resnet101
    norm: str = "frozen_bn"  # frozen_bn (BN statistics frozen, affine trainable) | bn | gn
    frozen_stages: int = 1  # stem + layer1 get no gradient
    pretrained_backbone: bool = True  # ImageNet (IMAGENET1K_V1) init when not loading a checkpoint
    backbone_weights: Optional[str] = None  # that init from a local torchvision ResNet file (None: download)
    fpn_channels: int = 256
    num_classes: int = 80
    num_proposals: int = 100
    num_stages: int = 6
    num_heads: int = 8
    ffn_dim: int = 2048
    dynamic_dim: int = 64
    pooler_size: int = 7
    num_cls_fcs: int = 1
    num_reg_fcs: int = 3
    max_per_image: Optional[int] = None  # None: num_proposals
    test_scale: tuple[int, int] = (1333, 800)  # (long side limit, short side limit)
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisor: int = 32
    class_weight: float = 2.0
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass(frozen=True)
class DataConfig:
    root: Optional[str] = (
        None  # a dataset: YOLO data.yaml, Pascal VOC folder or COCO .json (instead of the paths below)
    )
    format: Optional[str] = None  # coco | yolo | voc; None: detected from root
    classes: Optional[tuple[str, ...]] = None  # Pascal VOC's class list (or a names file); None: labelmap.txt / XMLs
    train_split: str = "train"  # of root (YOLO: a data.yaml key; VOC: ImageSets/Main/<split>.txt)
    val_split: Optional[str] = "val"  # of root; None or absent from the dataset: no validation
    train_ann: Optional[str] = None
    train_images: Optional[str] = None
    val_ann: Optional[str] = None
    val_images: Optional[str] = None
    pipeline: str = "1x"  # 1x | multiscale | crop
    train_scale: tuple[int, int] = (1333, 800)
    ms_short_sides: tuple[int, ...] = tuple(range(480, 801, 32))
    crop_short_sides: tuple[int, ...] = (400, 500, 600)
    crop_size: tuple[int, int] = (384, 600)
    flip_prob: float = 0.5
    filter_empty: bool = True
    min_size: int = 32  # images smaller than this (either side) are skipped in training
    bad_annotations: str = "error"  # error | skip
    batch_size: int = 2
    workers: int = 2


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 2.5e-5
    weight_decay: float = 1e-4
    clip_grad_norm: float = 1.0
    epochs: int = 12
    max_iters: Optional[int] = None  # stop after this many iterations (overrides epochs)
    lr_steps: tuple[int, ...] = (8, 11)  # epochs at which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    amp: str = "none"  # none | bf16 | fp16
    accumulate: int = 1  # gradient accumulation steps
    seed: int = 0
    checkpoint_interval: int = 0  # iterations; 0: only at the end of each epoch
    keep_checkpoints: int = 3
    eval_interval: int = 1  # epochs; 0: never during training
    log_interval: int = 20
    max_bad_steps: int = 5  # consecutive non-finite steps that stop the run
    freeze: str = "none"  # none | backbone | backbone+fpn: parameters not trained (fine-tuning on small data)
    # fine-tuning: {training class: checkpoint class} beside same-name matches, or a JSON file of one
    class_map: Optional[dict[str, str]] = None


@dataclass(frozen=True)
class Config:
    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
