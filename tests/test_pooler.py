import pytest
import torch
from torchvision.ops import roi_align

from sparse_rcnn.models.pooler import MultiLevelRoIAlign, roi_levels
from sparse_rcnn.ops.roi_align_grad import RoIAlignCPUGrad


def _square(side):
    return torch.tensor([[0.0, 0.0, side, side]])


def test_fpn_level_rule_mmdet_finest_scale_56():
    # floor(log2(sqrt(area) / 56 + 1e-6)) clamped to [0, 3]
    cases = {20: 0, 55.9: 0, 56: 0, 111.9: 0, 112: 1, 224: 2, 447: 2, 448: 3, 2000: 3}
    for side, level in cases.items():
        assert roi_levels(_square(side), 4).item() == level, side


def test_pooled_features_come_from_the_assigned_level():
    feats = [torch.randn(2, 3, 64 // s, 64 // s) for s in (1, 2, 4, 8)]
    boxes = torch.tensor(
        [[[0.0, 0.0, 30.0, 30.0], [2.0, 3.0, 60.0, 63.0]], [[5.0, 5.0, 250.0, 250.0], [1.0, 1.0, 500.0, 480.0]]]
    )
    pooler = MultiLevelRoIAlign(strides=(1, 2, 4, 8), output_size=7)
    out = pooler(feats, boxes)
    assert out.shape == (4, 3, 7, 7)
    levels = roi_levels(boxes.reshape(-1, 4), 4)
    assert levels.tolist() == [0, 0, 2, 3]
    for k, lvl in enumerate(levels.tolist()):
        b = k // 2
        roi = torch.cat([torch.tensor([[float(b)]]), boxes.reshape(-1, 4)[k : k + 1]], 1)
        ref = roi_align(feats[lvl], roi, 7, spatial_scale=1.0 / (1, 2, 4, 8)[lvl], sampling_ratio=2, aligned=True)
        assert torch.equal(out[k : k + 1], ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_static_pooling_is_bit_identical_to_pooling_by_level(dtype):
    # The fixed-shape path (every RoI at every level, then torch.where) against the nonzero /
    # index_copy_ path, on boxes of every level, partly outside, tiny, zero-size and inverted.
    gen = torch.Generator().manual_seed(7)
    strides = (4, 8, 16, 32)
    feats = [torch.randn(3, 5, 256 // s, 320 // s, generator=gen).to(dtype) for s in strides]
    boxes = _random_rois(gen, 3 * 48, 1, 256 * 2, 320 * 2)[:, 1:].reshape(3, 48, 4)
    pooler = MultiLevelRoIAlign(strides=strides, output_size=7).eval()
    assert set(roi_levels(boxes.reshape(-1, 4), 4).tolist()) == {0, 1, 2, 3}
    # torchvision's CPU kernel has no bf16: under autocast it computes in fp32 and returns bf16
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        by_level = pooler.pool_by_level(feats, boxes)
        static = pooler.pool_static(feats, boxes)
        default = pooler(feats, boxes)
    assert static.dtype == dtype and static.shape == (144, 5, 7, 7)
    assert by_level.abs().sum() > 0
    assert torch.equal(static, by_level)
    assert torch.equal(default, by_level)


# --- RoIAlign backward on the CPU (RoIAlignCPUGrad) against torchvision's own kernel ---


def _random_rois(gen, num, images, img_h, img_w):
    """xyxy rois in image pixels: ordinary, partly outside, fully outside, tiny, zero-size, inverted."""
    x = torch.rand(num, generator=gen) * img_w * 1.4 - img_w * 0.2
    y = torch.rand(num, generator=gen) * img_h * 1.4 - img_h * 0.2
    w = torch.rand(num, generator=gen) ** 2 * img_w * 0.8
    h = torch.rand(num, generator=gen) ** 2 * img_h * 0.8
    boxes = torch.stack([x, y, x + w, y + h], 1)
    k = num // 8
    boxes[:k, 2:] = boxes[:k, :2] + torch.rand(k, 2, generator=gen) * 1.5  # tiny
    boxes[k : k + 2, 2:] = boxes[k : k + 2, :2]  # zero-size
    boxes[k + 2] = torch.tensor([-80.0, -60.0, -30.0, -20.0])  # fully outside, above-left
    boxes[k + 3] = torch.tensor([img_w + 20.0, 5.0, img_w + 90.0, 40.0])  # fully outside, right
    boxes[k + 4] = torch.tensor([-40.0, -40.0, img_w + 40.0, img_h + 40.0])  # covers the map
    boxes[k + 5] = torch.tensor([30.0, 30.0, 10.0, 12.0])  # inverted
    batch = torch.randint(0, images, (num, 1), generator=gen).float()
    return torch.cat([batch, boxes], 1)


def _graph_nodes(tensor):
    names, todo = set(), [tensor.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None:
            names.add(type(fn).__name__)
            todo.extend(next_fn for next_fn, _ in fn.next_functions)
    return names


@pytest.mark.parametrize("sampling_ratio", [2, 0, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_backward_matches_torchvision(seed, sampling_ratio):
    gen = torch.Generator().manual_seed(seed)
    b, c, h, w, stride = 3, 5, 13, 17, 4
    feat = torch.randn(b, c, h, w, generator=gen)
    rois = _random_rois(gen, 60, b, h * stride, w * stride)
    scale = 1.0 / stride
    ours_feat = feat.clone().requires_grad_()
    ours = RoIAlignCPUGrad.apply(ours_feat, rois, 7, scale, sampling_ratio)
    ref = roi_align(feat, rois, 7, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=True)
    assert torch.equal(ours, ref)  # the forward is torchvision's, bit for bit
    grad_out = torch.randn(ours.shape, generator=gen)
    ours.backward(grad_out)
    expected = torch.ops.torchvision._roi_align_backward(grad_out, rois, scale, 7, 7, b, c, h, w, sampling_ratio, True)
    assert expected.abs().sum() > 0 and (expected == 0).any()
    torch.testing.assert_close(ours_feat.grad, expected, rtol=1e-5, atol=1e-6)


def test_cpu_backward_edge_cases():
    gen = torch.Generator().manual_seed(3)
    for b, c, h, w, rois in [
        (2, 3, 1, 1, _random_rois(gen, 20, 2, 4, 4)),  # 1x1 map
        (1, 4, 6, 9, torch.zeros(0, 5)),  # no rois
        # every roi off the map
        (2, 3, 8, 8, torch.tensor([[1.0, -50.0, -50.0, -20.0, -20.0], [0.0, 90.0, 2.0, 99.0, 9.0]])),
        # bins of exactly 1 px at scale 1/4: samples land exactly on y = H (x = W) and y = -1 (x = -1),
        # the inclusive limits of torchvision's kernel
        (2, 3, 8, 8, torch.tensor([[0.0, 7.0, 7.0, 35.0, 35.0], [1.0, -3.0, -3.0, 25.0, 25.0]])),
    ]:
        feat = torch.randn(b, c, h, w, generator=gen, requires_grad=True)
        out = RoIAlignCPUGrad.apply(feat, rois, 7, 0.25, 2)
        grad_out = torch.randn(out.shape, generator=gen)
        out.backward(grad_out)
        expected = torch.ops.torchvision._roi_align_backward(grad_out, rois, 0.25, 7, 7, b, c, h, w, 2, True)
        torch.testing.assert_close(feat.grad, expected, rtol=1e-5, atol=1e-6)


def test_cpu_backward_keeps_channels_last_and_bf16_under_autocast():
    gen = torch.Generator().manual_seed(4)
    feat = torch.randn(2, 8, 12, 10, generator=gen).to(memory_format=torch.channels_last)
    rois = _random_rois(gen, 30, 2, 48, 40)
    grads = []
    for fn in (RoIAlignCPUGrad.apply, lambda f, r, o, s, n: roi_align(f, r, o, s, n, True)):
        leaf = feat.clone().requires_grad_()
        fn(leaf, rois, 7, 0.25, 2).backward(torch.ones(30, 8, 7, 7) * torch.arange(49.0).view(7, 7))
        grads.append(leaf.grad)
    assert grads[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    # bf16 features (CPU autocast, as amp training): float32 accumulation, bf16 gradient
    grads = []
    for fn in (RoIAlignCPUGrad.apply, lambda f, r, o, s, n: roi_align(f, r, o, s, n, True)):
        leaf = feat.contiguous().bfloat16().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(leaf, rois.bfloat16(), 7, 0.25, 2)
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(5)).bfloat16())
        grads.append(leaf.grad)
    assert grads[0].dtype == torch.bfloat16
    torch.testing.assert_close(grads[0].float(), grads[1].float(), rtol=1e-2, atol=1e-2)


def test_multilevel_pooler_grads_match_torchvision_and_inference_uses_torchvision():
    gen = torch.Generator().manual_seed(6)
    strides = (4, 8, 16, 32)
    feats = [torch.randn(3, 6, 96 // s, 128 // s, generator=gen) for s in strides]
    boxes = _random_rois(gen, 3 * 40, 1, 96 * 2, 128 * 2)[:, 1:].reshape(3, 40, 4)
    boxes[:, :, 2:] = boxes[:, :, 2:].clamp(max=boxes[:, :, :2] + 400.0)  # nothing reaches P5
    pooler = MultiLevelRoIAlign(strides=strides, output_size=7)
    levels = roi_levels(boxes.reshape(-1, 4), 4)
    assert set(levels.tolist()) == {0, 1, 2}  # P5 has no rois
    grad_out = torch.randn(120, 6, 7, 7, generator=gen)

    ours_feats = [f.clone().requires_grad_() for f in feats]
    ours = pooler(ours_feats, boxes)
    assert "RoIAlignCPUGradBackward" in _graph_nodes(ours)
    ours.backward(grad_out)

    rois = torch.cat([torch.arange(3.0).repeat_interleave(40)[:, None], boxes.reshape(-1, 4)], 1)
    ref_feats = [f.clone().requires_grad_() for f in feats]
    ref = torch.zeros(120, 6, 7, 7)
    for lvl, (feat, stride) in enumerate(zip(ref_feats, strides)):
        idx = torch.nonzero(levels == lvl).squeeze(1)
        ref = ref.index_copy(0, idx, roi_align(feat, rois[idx], 7, 1.0 / stride, 2, True))
    ref.backward(grad_out)
    assert torch.equal(ours, ref)
    for o, r in zip(ours_feats, ref_feats):
        torch.testing.assert_close(o.grad, r.grad, rtol=1e-5, atol=1e-6)
    assert not ours_feats[3].grad.any()

    with torch.no_grad():  # inference: plain torchvision, nothing recorded
        assert torch.equal(pooler(ours_feats, boxes), ref)
