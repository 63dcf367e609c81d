"""Reading a config: a named YAML file (``sparse_rcnn/configs``) or a path, dotted overrides
(``train.lr=1e-4``), and the checks that name a wrong key or value."""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from .schema import Config, ConfigError

CONFIG_DIR = Path(__file__).parents[1] / "configs"


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
        _set_dotted(raw, key.strip(), override_value(key.strip(), value))
    return raw


def override_value(key: str, text: str) -> Any:
    """The value of a ``key=text`` override, read as YAML; malformed YAML is a ConfigError naming ``key``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config key {key!r}: {text!r} is not a valid YAML value ({problem})") from None


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
        return _build(typing.cast(type, tp), value, key + ".")  # a dataclass type, not an instance
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, key)
    if origin is tuple and key in NAME_LISTS and isinstance(value, str):
        return tuple(_names_file(value, key))
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


NAME_LISTS = ("data.classes",)  # list keys that may also name a file of names (one a line, or labelmap.txt)


def _names_file(path: str, key: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config key {key!r}: cannot read {path!r} ({getattr(e, 'strerror', None) or e})") from None
    names = [line.split(":", 1)[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [n for n in names if n != "background"]


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
