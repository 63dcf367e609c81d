"""Opt-in fast inference modes (speed-ups apart from the paper): lower precision, BN folding,
channels-last and Winograd convolutions. Plain fp32 with no option stays bit-identical to MMDetection.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, TypeVar

import torch

from ..common import PRECISIONS
from .fold_bn import fold_frozen_batchnorm
from .winograd import use_winograd


class InferenceModel(Protocol):
    """What ``optimize_for_inference`` changes: a SparseRCNN (models/ sits above ops/ and is not imported here)."""

    backbone: Any  # a models.backbone.ResNetFPN: ``body``, ``set_compute``
    head_autocast: Optional[torch.dtype]

    def eval(self) -> Any: ...


Model = TypeVar("Model", bound=InferenceModel)


def optimize_for_inference(
    model: Model,
    *,
    dtype: str = "fp32",
    fold_bn: bool = False,
    channels_last: Optional[bool] = None,
    head_dtype: Optional[str] = None,
    scope: str = "backbone",
    winograd: bool = False,
) -> Model:
    """Opt-in fast inference, in place; returns the model in eval mode (do not train it afterwards).

    dtype: precision of the convolutions (``fp32``, ``bf16``: oneDNN AVX512-BF16/AMX on CPUs
        that have it, ``fp16``: GPUs). Their outputs go back to fp32 before RoIAlign, so
        boxes are always decoded in fp32.
    scope: which convolutions run in ``dtype``: ``backbone`` (ResNet body + FPN: fastest) or
        ``fpn`` (the FPN only, the ResNet body stays fp32: smaller deviation).
    head_dtype: autocast precision of the six stages' matrix products (default: fp32, or
        bf16 when ``dtype`` is bf16 on the CPU, fp16 when fp16). LayerNorm, softmax and the
        box decoding stay fp32.
    fold_bn: fold the frozen BatchNorm into the convolutions (saves one pass over every
        feature map; changes fp32 rounding: 8e-5 on the reference scores).
    channels_last: NHWC layout for the convolutions (oneDNN's fast layout for bf16; in fp32
        it changes the summation order: 3.5e-5 on the reference scores). Default: on unless
        dtype is fp32 or winograd is set.
    winograd: compute the 3x3 stride-1 convolutions that stay fp32 with NNPACK's Winograd
        kernel on the CPU (``sparse_rcnn.winograd``; needs NCHW, so not with channels_last).
    ``optimize_for_inference()`` with no arguments changes nothing: fp32 stays bit-identical to
    MMDetection.
    The deviation of every mode from fp32 on the reference inputs is in BENCHMARKS.md.
    """
    if dtype not in PRECISIONS or (head_dtype is not None and head_dtype not in PRECISIONS):
        raise ValueError(f"unknown dtype {dtype!r}/{head_dtype!r}; choose from {sorted(PRECISIONS)}")
    if scope not in ("backbone", "fpn"):
        raise ValueError(f"unknown scope {scope!r}; choose backbone or fpn")
    if channels_last is None:
        channels_last = dtype != "fp32" and not winograd
    if winograd and (channels_last or (dtype != "fp32" and scope == "backbone")):
        raise ValueError(
            "winograd=True applies to fp32 NCHW convolutions: use it without "
            "channels_last, with dtype='fp32' or scope='fpn'"
        )
    model.eval()
    if fold_bn:
        fold_frozen_batchnorm(model.backbone.body)
    compute = None if dtype == "fp32" else PRECISIONS[dtype]
    model.backbone.set_compute(dtype=compute, channels_last=channels_last, fpn_only=scope == "fpn")
    if winograd:
        use_winograd(model.backbone.body if scope == "fpn" and compute is not None else model.backbone)
    head = head_dtype or dtype
    model.head_autocast = None if head == "fp32" else PRECISIONS[head]
    return model
