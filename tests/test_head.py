import math

import torch

from sparse_rcnn.models.head import MAX_LOG_SCALE, DynamicStage, decode_boxes


def test_zero_deltas_keep_boxes():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 1.0, 1.0]])
    assert torch.equal(decode_boxes(boxes, torch.zeros(2, 4)), boxes)


def test_delta_semantics_and_stds():
    box = torch.tensor([[0.0, 0.0, 40.0, 20.0]])  # cx 20, cy 10, w 40, h 20
    out = decode_boxes(box, torch.tensor([[1.0, -1.0, math.log(2.0), 0.0]]))
    # dx is scaled by std 0.5: cx' = 20 + 0.5 * 40 = 40; cy' = 10 - 0.5 * 20 = 0; w' = 80 (std 1); h' = 20
    assert torch.allclose(out, torch.tensor([[0.0, -10.0, 80.0, 10.0]]))


def test_dw_dh_clamp():
    assert abs(MAX_LOG_SCALE - abs(math.log(16 / 1000))) < 1e-12 and abs(MAX_LOG_SCALE - 4.135) < 1e-3
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    big = decode_boxes(box, torch.tensor([[0.0, 0.0, 50.0, -50.0]]))
    w, h = big[0, 2] - big[0, 0], big[0, 3] - big[0, 1]
    assert torch.isclose(w, torch.tensor(10 * math.exp(MAX_LOG_SCALE)), rtol=1e-5)
    assert torch.isclose(h, torch.tensor(10 * math.exp(-MAX_LOG_SCALE)), rtol=1e-5)
    assert torch.isfinite(big).all()


def test_stage_shapes_and_prior_bias():
    stage = DynamicStage(num_classes=5, dim=32, num_heads=4, ffn_dim=64, dynamic_dim=8)
    feats = torch.randn(2, 6, 32)
    rois = torch.randn(12, 32, 7, 7)
    logits, deltas, new = stage(feats, rois)
    assert logits.shape == (2, 6, 5) and deltas.shape == (2, 6, 4) and new.shape == (2, 6, 32)
    assert torch.allclose(stage.cls_logits.bias, torch.full((5,), -math.log(99.0)))
    # batch-first: proposals of one image attend only to each other
    logits0, _, _ = stage(feats[:1], rois[:6])
    assert torch.allclose(logits0, logits[:1], atol=1e-5)
