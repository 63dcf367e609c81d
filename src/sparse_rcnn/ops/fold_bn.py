"""Folding frozen BatchNorm into the preceding convolution: an opt-in inference speed-up."""

from __future__ import annotations

from typing import Union, cast

import torch
from torch import nn


@torch.no_grad()
def fold_frozen_batchnorm(module: nn.Module) -> nn.Module:
    """Fold eval-mode BatchNorm into the preceding conv, in place (inference only).

    Returns the module; every ``conv -> bn`` pair of the ResNet body becomes one conv with bias.
    """
    for child in list(module.children()):
        fold_frozen_batchnorm(child)
    pairs = [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")]
    for conv_name, bn_name in pairs:
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, _fold(conv, bn))
            setattr(module, bn_name, nn.Identity())
    if isinstance(module, nn.Sequential) and len(module) == 2:
        conv, bn = module[0], module[1]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module[0], module[1] = _fold(conv, bn), nn.Identity()
    return module


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    assert bn.running_mean is not None and bn.running_var is not None, "BatchNorm without running statistics"
    # torch annotates a Conv2d's sizes as tuple[int, ...]; they are its constructor's 2-tuples
    pair = tuple[int, int]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        cast(pair, conv.kernel_size),
        cast(pair, conv.stride),
        cast(Union[str, pair], conv.padding),
        cast(pair, conv.dilation),
        conv.groups,
        bias=True,
    ).to(conv.weight.device, conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    assert fused.bias is not None  # bias=True
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused
