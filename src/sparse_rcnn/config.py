"""Configuration: frozen dataclasses whose defaults are the paper's (MMDetection's) numbers.

A named config is one YAML file in ``sparse_rcnn/configs``; it only lists what differs from the
defaults. ``load_config`` reads a name or a path and applies dotted overrides
(``train.lr=1e-4``). Unknown keys and wrong types are errors that name the key. The config stops at
the builders (``models.build_model``, ``data.build_datasets``, the ``Trainer``): modules never see it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"


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


def named_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str, overrides: typing.Sequence[str] = ()) -> Config:
    """Load a named config (``sparse_rcnn_r50_fpn_1x_coco``) or a YAML path, then apply overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            hint = difflib.get_close_matches(name_or_path, named_configs(), n=1)
            raise ConfigError(
                f"unknown config {name_or_path!r}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + " (see `sparse-rcnn models`, or pass a YAML path)"
            )
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections")
    raw.setdefault("name", path.stem)
    return config_from_dict(apply_overrides(raw, overrides))


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Set ``section.key=value`` items (values read as YAML) in nested dicts, in place; returns them."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    return raw


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build a validated Config from nested dicts (as saved in checkpoints)."""
    cfg = _build(Config, raw, prefix="")
    check_values(cfg)
    return cfg


# Values the code accepts; anything else is a ConfigError when the config is built.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.backbone": ("resnet18", "resnet34", "resnet50", "resnet101"),
    "model.norm": ("frozen_bn", "bn", "gn"),
    "data.pipeline": ("1x", "multiscale", "crop"),
    "data.bad_annotations": ("error", "skip"),
    "data.format": ("coco", "yolo", "voc"),
    "train.amp": ("none", "bf16", "fp16"),
    "train.freeze": ("none", "backbone", "backbone+fpn"),
}
# Lower bounds (for tuples: of every item); None values (optional keys) pass.
AT_LEAST: dict[str, float] = {
    **dict.fromkeys(
        [
            "model.fpn_channels",
            "model.num_classes",
            "model.num_proposals",
            "model.num_stages",
            "model.num_heads",
            "model.ffn_dim",
            "model.dynamic_dim",
            "model.pooler_size",
            "model.size_divisor",
            "model.test_scale",
            "model.max_per_image",
            "data.train_scale",
            "data.ms_short_sides",
            "data.crop_short_sides",
            "data.crop_size",
            "data.batch_size",
            "train.epochs",
            "train.max_iters",
            "train.accumulate",
            "train.log_interval",
            "train.max_bad_steps",
        ],
        1,
    ),
    **dict.fromkeys(
        [
            "model.frozen_stages",
            "model.num_cls_fcs",
            "model.num_reg_fcs",
            "data.min_size",
            "data.workers",
            "data.flip_prob",
            "train.lr",
            "train.weight_decay",
            "train.clip_grad_norm",
            "train.warmup_iters",
            "train.checkpoint_interval",
            "train.keep_checkpoints",
            "train.eval_interval",
            "train.lr_steps",
            "train.lr_gamma",
            "model.focal_alpha",
            "model.focal_gamma",
        ],
        0,
    ),
}
AT_MOST: dict[str, float] = {"data.flip_prob": 1, "model.focal_alpha": 1, "model.frozen_stages": 4}


def check_values(cfg: Config) -> None:
    """Refuse values no builder can use, naming the key (ranges, choices, head divisibility)."""
    for section in ("model", "data", "train"):
        for f in dataclasses.fields(getattr(cfg, section)):
            key, value = f"{section}.{f.name}", getattr(getattr(cfg, section), f.name)
            if key in CHOICES and value not in CHOICES[key] and not (value is None and f.default is None):
                raise ConfigError(f"config key {key!r} must be one of {', '.join(CHOICES[key])}; got {value!r}")
            items = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in items):
                raise ConfigError(f"config key {key!r} must be a finite number; got {value!r}")
            if key in AT_LEAST and any(v is not None and v < AT_LEAST[key] for v in items):
                raise ConfigError(f"config key {key!r} must be >= {AT_LEAST[key]:g}; got {value!r}")
            if key in AT_MOST and any(v is not None and v > AT_MOST[key] for v in items):
                raise ConfigError(f"config key {key!r} must be <= {AT_MOST[key]:g}; got {value!r}")
    if any(v <= 0 for v in cfg.model.pixel_std):
        raise ConfigError(f"config key 'model.pixel_std' must be > 0; got {cfg.model.pixel_std!r}")
    if cfg.model.fpn_channels % cfg.model.num_heads:
        raise ConfigError(
            f"config key 'model.num_heads' ({cfg.model.num_heads}) must divide model.fpn_channels "
            f"({cfg.model.fpn_channels})"
        )


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
    node[parts[-1]] = value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config key {prefix.rstrip('.') or '<root>'!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            hint = difflib.get_close_matches(key, names, n=1)
            raise ConfigError(
                f"unknown config key {prefix + key!r}"
                + (f"; did you mean {prefix + hint[0]!r}?" if hint else f"; valid keys: {', '.join(names)}")
            )
        kwargs[key] = _coerce(hints[key], value, prefix + key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"config key {key!r} must have {len(args)} items, got {value!r}")
        return tuple(_coerce(a, v, key) for a, v in zip(args, value))
    if origin is dict:
        return _mapping(value, key)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"config key {key!r} must be {getattr(tp, '__name__', tp)}, got {value!r}")


def _mapping(value: Any, key: str) -> dict[str, str]:
    """A {str: str} mapping, given inline or as the path of a JSON (or YAML) file holding one."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(Path(value).read_text())  # JSON is YAML
        except OSError as e:
            raise ConfigError(f"config key {key!r}: cannot read {value!r} ({e.strerror or e})") from None
        except yaml.YAMLError:
            raise ConfigError(f"config key {key!r}: {value!r} is not a JSON mapping") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(
            f'config key {key!r} must map names to names, e.g. {{"truck": "car"}}, or name a JSON file of '
            f"one; got {value!r}"
        )
    return dict(value)
