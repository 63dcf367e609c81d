"""winograd.WinogradConv2d: NNPACK's Winograd kernel where it applies, nn.Conv2d's path elsewhere."""

import pytest
import torch
from torch import nn

from sparse_rcnn.models.backbone import ResNetFPN
from sparse_rcnn.ops.winograd import WinogradConv2d, eligible, nnpack_available, use_winograd

needs_nnpack = pytest.mark.skipif(not nnpack_available(), reason="this PyTorch build has no working NNPACK")


@pytest.fixture
def nnpack_calls(monkeypatch):
    """Counts the calls of NNPACK's convolution (so a test knows which path ran)."""
    calls = []
    real = torch._nnpack_spatial_convolution

    def spy(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", spy)
    return calls


@needs_nnpack
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 16, 37, 53), (3, 5, 6, 7), (1, 4, 3, 3), (1, 4, 1, 1), (0, 4, 5, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_the_direct_convolution(nnpack_calls, padding, shape, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(shape[1], 6, 3, padding=padding, bias=bias)
    x = torch.randn(shape)
    wino = WinogradConv2d.from_conv(conv)
    with torch.no_grad():
        if min(shape[2:]) + 2 * padding < 3:  # no output pixel: both refuse
            for module in (wino, conv):
                with pytest.raises(RuntimeError):
                    module(x)
            return
        got, want = wino(x), conv(x)
    assert len(nnpack_calls) == shape[0]  # one image at a time
    assert got.shape == want.shape
    assert got.numel() == 0 or (got - want).abs().max() <= 1e-5 * want.abs().max()


@needs_nnpack
def test_other_paths_are_the_library_convolution(nnpack_calls):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    wino = WinogradConv2d.from_conv(conv)
    x = torch.randn(2, 8, 10, 12)
    assert torch.equal(wino(x), conv(x))  # gradient needed: the weights require grad
    with torch.no_grad():
        cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(wino(cl), conv(cl))
        conv64 = nn.Conv2d(8, 8, 3, padding=1).double()
        assert torch.equal(WinogradConv2d.from_conv(conv64)(x.double()), conv64(x.double()))
    assert nnpack_calls == []


def test_replaces_only_eligible_convolutions_and_keeps_the_state_dict():
    backbone = ResNetFPN(depth_name="resnet18", out_channels=16)
    keys = list(backbone.state_dict())
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert use_winograd(backbone) == sum(eligible(m) for m in convs) == 17  # 13 in the body + 4 FPN outputs
    assert list(backbone.state_dict()) == keys
    assert not isinstance(backbone.body.conv1, WinogradConv2d)  # 7x7 stride 2
    assert not isinstance(backbone.body.layer2[0].conv1, WinogradConv2d)  # stride 2
    assert isinstance(backbone.fpn.layer_blocks[0][0], WinogradConv2d)
    assert not eligible(nn.Conv2d(4, 4, 3, groups=2)) and not eligible(nn.Conv2d(4, 4, 3, dilation=2))


def test_warns_when_nnpack_is_missing(monkeypatch, caplog):
    monkeypatch.setattr(torch.backends.nnpack, "is_available", lambda: False)
    nnpack_available.cache_clear()
    try:
        conv = nn.Conv2d(4, 4, 3, padding=1)
        parent = nn.Sequential(conv)
        assert use_winograd(parent) == 1 and "no working NNPACK" in caplog.text
        x = torch.randn(1, 4, 6, 6)
        with torch.no_grad():
            assert torch.equal(parent(x), conv(x))  # the library convolution
    finally:
        nnpack_available.cache_clear()
