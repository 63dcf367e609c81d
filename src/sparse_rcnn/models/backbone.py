"""ResNet + FPN feature extractor (paper Sec. 3, "Backbone").

torchvision's ResNet ("pytorch" style, stride in the 3x3 conv) and FeaturePyramidNetwork, giving
P2-P5 (strides 4, 8, 16, 32) with nearest top-down upsampling and no extra levels, exactly as
MMDetection's ``ResNet(norm_eval=True, frozen_stages=1)`` + ``FPN(num_outs=4)``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional, cast

import torch
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FeaturePyramidNetwork

from ..checkpoints import load_state_strict
from ..ops.stem_pool import StemMaxPool

_RESNETS: dict[str, Callable[..., resnet.ResNet]] = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
}
# torchvision's ImageNet weights of each body (their URL carries the sha256 prefix we check)
RESNET_WEIGHTS = {
    "resnet18": resnet.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": resnet.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": resnet.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": resnet.ResNet101_Weights.IMAGENET1K_V1,
}
STRIDES = (4, 8, 16, 32)


def _norm_layer(norm: str) -> Callable[[int], nn.Module]:
    if norm in ("frozen_bn", "bn"):
        return nn.BatchNorm2d
    if norm == "gn":
        return lambda channels: nn.GroupNorm(32, channels)
    raise ValueError(f"unknown norm {norm!r}; use frozen_bn, bn or gn")


class ResNetFPN(nn.Module):
    """ResNet body + FPN.

    Args:
        depth_name: one of resnet18/34/50/101.
        out_channels: FPN width (256).
        norm: ``frozen_bn`` keeps BatchNorm in eval mode (running statistics frozen, affine
            parameters trainable: MMDetection's ``norm_eval=True``); ``bn`` trains it; ``gn`` uses
            GroupNorm(32), which suits training from scratch with small batches.
        frozen_stages: 0 freezes nothing, 1 freezes the stem and layer1, k freezes up to layer k.
        body_weights: a torchvision ResNet ``state_dict`` to start from (the builder passes
            ``RESNET_WEIGHTS[depth_name]``'s IMAGENET1K_V1 file, as torchvision's builders do).
    """

    def __init__(
        self,
        *,
        depth_name: str = "resnet50",
        out_channels: int = 256,
        norm: str = "frozen_bn",
        frozen_stages: int = 1,
        body_weights: Optional[dict[str, torch.Tensor]] = None,
    ) -> None:
        super().__init__()
        if depth_name not in _RESNETS:
            raise ValueError(f"unknown backbone {depth_name!r}; choose from {sorted(_RESNETS)}")
        body = _RESNETS[depth_name](weights=None, norm_layer=_norm_layer(norm))
        if body_weights is not None:
            load_state_strict(body, body_weights, source=f"{depth_name} ImageNet weights")
        body.maxpool = StemMaxPool()
        self.body = IntermediateLayerGetter(
            body, return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
        )
        widths = [_block_out(getattr(body, f"layer{i}")) for i in (1, 2, 3, 4)]
        self.fpn = FeaturePyramidNetwork(widths, out_channels)
        self.out_channels = out_channels
        self.freeze_bn_stats = norm == "frozen_bn"
        self.compute_dtype: torch.dtype | None = None  # None: the dtype of the input batch
        self.channels_last = False
        self.fpn_only = False
        frozen = [self.body.conv1, self.body.bn1] if frozen_stages >= 1 else []
        frozen += [getattr(self.body, f"layer{i}") for i in range(1, frozen_stages + 1)]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)
        _init_fpn(self.fpn)

    def train(self, mode: bool = True) -> "ResNetFPN":
        super().train(mode)
        if self.freeze_bn_stats:
            for m in self.body.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def set_compute(
        self, *, dtype: torch.dtype | None = None, channels_last: bool = False, fpn_only: bool = False
    ) -> "ResNetFPN":
        """Run the convolutions in ``dtype`` (weights converted; None keeps them; ``fpn_only``:
        the ResNet body keeps its dtype and only the FPN is converted) and/or in channels-last
        (NHWC) memory layout. The outputs keep the input's dtype and NCHW layout, so the head
        never sees the difference. In place; returns self."""
        target = self.fpn if fpn_only else self
        if dtype is not None:
            target.to(dtype)
        self.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        self.compute_dtype, self.channels_last, self.fpn_only = dtype, channels_last, fpn_only
        return self

    def forward(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) normalised batch -> [P2, P3, P4, P5], each (B, C, H/s, W/s)."""
        dtype = self.compute_dtype
        x = images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        if dtype is not None and not self.fpn_only:
            x = x.to(dtype)
        feats = self.body(x)
        if dtype is not None and self.fpn_only:
            feats = {k: v.to(dtype) for k, v in feats.items()}
        outs = list(self.fpn(OrderedDict(feats)).values())
        if dtype is None and not self.channels_last:
            return outs
        return [f.to(images.dtype).contiguous() for f in outs]


def _block_out(layer: nn.Sequential) -> int:
    last = layer[-1]
    return cast(nn.Conv2d, last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def _init_fpn(fpn: nn.Module) -> None:
    """MMDetection's FPN init: xavier_uniform conv weights, zero bias."""
    for m in fpn.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            assert m.bias is not None  # the FPN's convolutions have a bias
            nn.init.zeros_(m.bias)
