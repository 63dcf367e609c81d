"""``build_datasets``: the training and validation datasets a config describes (as ``build_model``
is the model's builder, this is the only reader of ``DataConfig``)."""

from __future__ import annotations

from typing import Optional

from ..config import Config, ConfigError
from .coco import CocoDetection
from .transforms import build_train_transform


def build_datasets(cfg: Config) -> tuple[CocoDetection, Optional[CocoDetection]]:
    """Training and (optional) validation ``CocoDetection`` from ``cfg.data``."""
    d = cfg.data
    if not d.train_ann or not d.train_images:
        raise ConfigError("no training data: set `data.train_ann` and `data.train_images`")
    if bool(d.val_ann) != bool(d.val_images):
        raise ConfigError("validation needs both `data.val_ann` and `data.val_images`")
    transform = build_train_transform(
        pipeline=d.pipeline, train_scale=d.train_scale, ms_short_sides=d.ms_short_sides,
        crop_short_sides=d.crop_short_sides, crop_size=d.crop_size, flip_prob=d.flip_prob,
    )
    train = CocoDetection(
        d.train_ann, d.train_images, transform=transform, train=True, filter_empty=d.filter_empty,
        min_size=d.min_size, bad_annotations=d.bad_annotations, seed=cfg.train.seed,
    )
    val = None
    if d.val_ann:
        val = CocoDetection(d.val_ann, d.val_images, train=False, filter_empty=False, bad_annotations=d.bad_annotations)
        if list(val.class_names) != list(train.class_names):
            raise ConfigError(f"validation categories {val.class_names[:5]}... differ from training's {train.class_names[:5]}...; use annotation files with the same categories")
    return train, val
