"""Winograd 3x3 convolutions on the CPU, through the NNPACK library bundled with PyTorch.

An opt-in fp32 inference mode (``model.optimize_for_inference(winograd=True)``). Winograd's
F(6x6, 3x3) algorithm computes a 3x3, stride-1 convolution with about a fifth of the
multiplications of the direct method, at the price of a slightly different rounding. oneDNN, the
library behind PyTorch's CPU convolutions, always runs them directly; NNPACK's Winograd kernel is
2-3x faster on the large feature maps of a ResNet + FPN at 800x1333 (FPN P2: 122 vs 356 ms on two
Zen 4 cores) with a relative error of 3e-6 against float64 (oneDNN: 2e-7). The measured speed and
the deviation of whole detections are in BENCHMARKS.md.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from typing import TypeGuard  # Python 3.10

log = logging.getLogger(__name__)


@functools.cache
def nnpack_available() -> bool:
    """Whether this PyTorch build has NNPACK and it works on this CPU (this call also
    initialises NNPACK, which its convolution needs and does not do itself)."""
    return torch.backends.nnpack.is_available()


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride-1, ungrouped ``nn.Conv2d`` (same parameters, same state-dict keys) whose
    fp32 CPU inference runs NNPACK's Winograd kernel, one image at a time (NNPACK's batched
    path is not Winograd and is slower than oneDNN).

    Everything else takes ``nn.Conv2d``'s own path, so the module stays correct anywhere: when
    a gradient is needed, for other dtypes or devices, channels-last input, ONNX export, tracing
    and ``torch.compile``, and on builds without NNPACK. NNPACK keeps its own thread pool, sized
    by ``torch.get_num_threads()`` when it is first used: set the thread count before that.
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "WinogradConv2d":
        """A WinogradConv2d sharing ``conv``'s weight and bias (no copy)."""
        if not eligible(conv):
            raise ValueError(f"not a 3x3 stride-1 ungrouped convolution: {conv}")
        padding = cast("tuple[int, int]", conv.padding)  # a tuple: ``eligible``
        new = cls(conv.in_channels, conv.out_channels, 3, padding=padding, bias=False, device="meta")
        new.weight, new.bias = conv.weight, conv.bias
        return new

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H + 2p - 2, W + 2p - 2)."""
        if not self._use_nnpack(x):
            return super().forward(x)
        bias = self.bias if self.bias is not None else x.new_zeros(self.out_channels)
        padding = list(cast("tuple[int, int]", self.padding))  # a tuple: ``from_conv``
        outs = [torch._nnpack_spatial_convolution(image, self.weight, bias, padding) for image in x.split(1)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _use_nnpack(self, x: Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and self.weight.is_contiguous()
            and x.dim() == 4
            and x.shape[0] > 0
            and x.is_contiguous()
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
            and not torch.jit.is_tracing()
            and not torch.jit.is_scripting()
            and not torch.onnx.is_in_onnx_export()
            and not torch.compiler.is_compiling()
            and nnpack_available()
        )


def eligible(conv: nn.Module) -> TypeGuard[nn.Conv2d]:
    """A convolution NNPACK's Winograd kernel computes: 3x3, stride 1, no dilation or groups,
    zero padding of at most 2."""
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and all(p <= 2 for p in conv.padding)
    )


def use_winograd(module: nn.Module) -> int:
    """Replace every eligible ``nn.Conv2d`` under ``module`` by a ``WinogradConv2d`` sharing its
    parameters, in place. Returns how many were replaced (R-50 + FPN: 17 of its 61)."""
    if not nnpack_available():
        log.warning("this PyTorch build has no working NNPACK: the Winograd mode runs the usual convolutions")
    count = 0
    for name, child in list(module.named_children()):
        if eligible(child):
            setattr(module, name, WinogradConv2d.from_conv(child))
            count += 1
        else:
            count += use_winograd(child)
    return count
