"""A tiny Sparse R-CNN for fast CPU tests (same code as the zoo models, small widths)."""

import dataclasses

from sparse_rcnn.config import Config, ModelConfig


def tiny_model_config(**overrides) -> ModelConfig:
    base = ModelConfig(
        backbone="resnet18",
        pretrained_backbone=False,
        fpn_channels=32,
        num_proposals=8,
        num_stages=2,
        num_heads=4,
        ffn_dim=64,
        dynamic_dim=8,
        num_classes=3,
        test_scale=(160, 128),
    )
    return dataclasses.replace(base, **overrides)


def tiny_config(**overrides) -> Config:
    return Config(name="tiny", model=tiny_model_config(**overrides))


def save_tiny_checkpoint(path, class_names, **overrides):
    """A randomly initialised tiny model saved as a sparse-rcnn checkpoint at ``path``; returns it."""
    from sparse_rcnn.checkpoints import model_checkpoint, save_checkpoint
    from sparse_rcnn.models import build_model

    cfg = tiny_config(num_classes=len(class_names), **overrides)
    save_checkpoint(model_checkpoint(build_model(cfg.model, class_names), cfg), path)
    return path


def save_whole_image_checkpoint(path, class_names, **overrides):
    """A tiny untrained model whose boxes are its initial proposals, the whole image (box deltas
    zeroed), saved at ``path``: it scores AP > 0 on objects that fill their images."""
    import torch

    from sparse_rcnn.checkpoints import model_checkpoint, save_checkpoint
    from sparse_rcnn.models import build_model

    cfg = tiny_config(num_classes=len(class_names), **overrides)
    model = build_model(cfg.model, class_names)
    with torch.no_grad():
        for stage in model.stages:
            stage.box_deltas.weight.zero_()
            stage.box_deltas.bias.zero_()
    save_checkpoint(model_checkpoint(model, cfg), path)
    return path
