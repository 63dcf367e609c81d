"""Configuration: frozen dataclasses whose defaults are the paper's (MMDetection's) numbers.

A named config is one YAML file in ``sparse_rcnn/configs``; it only lists what differs from the
defaults. ``load_config`` reads a name or a path and applies dotted overrides
(``train.lr=1e-4``). Unknown keys and wrong types are errors that name the key. The config stops at
the builders (``models.build_model``, ``data.build_datasets``, the ``Trainer``): modules never see it.
"""

from .loading import (
    CONFIG_DIR,
    apply_overrides,
    check_values,
    config_from_dict,
    load_config,
    named_configs,
    override_value,
)
from .schema import Config, ConfigError, DataConfig, ModelConfig, TrainConfig

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "CONFIG_DIR",
    "load_config",
    "apply_overrides",
    "override_value",
    "config_from_dict",
    "check_values",
    "named_configs",
]
