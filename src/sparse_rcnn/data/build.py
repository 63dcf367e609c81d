"""``build_datasets``: the training and validation datasets a config describes (as ``build_model``
is the model's builder, this is the only reader of ``DataConfig``)."""

from __future__ import annotations

import logging
from typing import Optional

from ..config import Config, ConfigError
from .coco import CocoDetection
from .sources import load_split, resolve_format, split_names
from .transforms import build_train_transform

log = logging.getLogger(__name__)


def build_datasets(cfg: Config) -> tuple[CocoDetection, Optional[CocoDetection]]:
    """Training and (optional) validation ``CocoDetection`` from ``cfg.data``.

    ``data.root`` (a YOLO data.yaml, a Pascal VOC folder or a COCO json; format ``data.format`` or
    detected) names the whole dataset: splits ``data.train_split`` and ``data.val_split`` (no
    validation when the latter is None or not in the dataset; a COCO json is one split with its
    images beside it). Without it: the COCO files ``data.train_ann`` / ``data.val_ann`` and their
    image folders.
    """
    d = cfg.data
    if d.root:
        train_split, val_split = _splits_of_root(d)
    else:
        if not d.train_ann or not d.train_images:
            raise ConfigError("no training data: set `data.root`, or `data.train_ann` and `data.train_images`")
        if bool(d.val_ann) != bool(d.val_images):
            raise ConfigError("validation needs both `data.val_ann` and `data.val_images`")
        train_split = load_split(d.train_ann, format="coco", images=d.train_images)
        val_split = load_split(d.val_ann, format="coco", images=d.val_images) if d.val_ann else None
    transform = build_train_transform(
        pipeline=d.pipeline,
        train_scale=d.train_scale,
        ms_short_sides=d.ms_short_sides,
        crop_short_sides=d.crop_short_sides,
        crop_size=d.crop_size,
        flip_prob=d.flip_prob,
    )
    train = CocoDetection.from_split(
        train_split,
        transform=transform,
        train=True,
        filter_empty=d.filter_empty,
        min_size=d.min_size,
        bad_annotations=d.bad_annotations,
        seed=cfg.train.seed,
    )
    val = None
    if val_split is not None:
        val = CocoDetection.from_split(val_split, train=False, filter_empty=False, bad_annotations=d.bad_annotations)
        if list(val.class_names) != list(train.class_names):
            raise ConfigError(
                f"validation categories {val.class_names[:5]}... differ from training's "
                f"{train.class_names[:5]}...; use annotation files with the same categories"
            )
    return train, val


def _splits_of_root(d):
    if d.train_ann or d.val_ann:
        log.info("data.root %s is the dataset: data.train_ann / data.val_ann are not used", d.root)
    fmt = resolve_format(d.root, d.format)
    if fmt == "coco":
        return load_split(d.root, format=fmt), None
    train = load_split(d.root, format=fmt, split=d.train_split, classes=d.classes)
    available = split_names(d.root, fmt)
    val_split = None
    if d.val_split and d.val_split in available:
        val_split = load_split(d.root, format=fmt, split=d.val_split, classes=d.classes)
    elif d.val_split:
        log.warning(
            "%s has no %r split (it has: %s): training without validation; set `data.val_split`",
            d.root,
            d.val_split,
            ", ".join(available),
        )
    return train, val_split
