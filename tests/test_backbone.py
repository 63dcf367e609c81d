"""backbone.StemMaxPool: bit-identical to F.max_pool2d(x, 3, 2, 1) on every path."""

import pytest
import torch
import torch.nn.functional as F

from sparse_rcnn.models.backbone import ResNetFPN
from sparse_rcnn.ops.stem_pool import StemMaxPool


@pytest.mark.parametrize("shape", [(1, 64, 40, 68), (2, 3, 41, 67), (1, 2, 1, 1), (1, 1, 2, 5), (3, 2, 5, 1)])
def test_equals_library_max_pool_with_nans_and_odd_sizes(shape):
    x = torch.randn(shape)
    x.view(-1)[::7] = float("nan")
    x.view(-1)[3::11] = float("-inf")
    got, want = StemMaxPool()(x), F.max_pool2d(x, 3, 2, 1)
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(0.0), want.nan_to_num(0.0))


def test_channels_last_and_gradient_paths_use_the_library_kernel():
    x = torch.randn(2, 4, 9, 10)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(StemMaxPool()(cl), F.max_pool2d(x, 3, 2, 1))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    StemMaxPool()(a).square().sum().backward()
    F.max_pool2d(b, 3, 2, 1).square().sum().backward()
    assert torch.equal(a.grad, b.grad)


def test_resnet_stem_uses_it():
    backbone = ResNetFPN(depth_name="resnet18", out_channels=16)
    assert isinstance(backbone.body.maxpool, StemMaxPool)
