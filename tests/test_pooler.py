import torch
from torchvision.ops import roi_align

from sparse_rcnn.pooler import MultiLevelRoIAlign, roi_levels


def _square(side):
    return torch.tensor([[0.0, 0.0, side, side]])


def test_fpn_level_rule_mmdet_finest_scale_56():
    # floor(log2(sqrt(area) / 56 + 1e-6)) clamped to [0, 3]
    cases = {20: 0, 55.9: 0, 56: 0, 111.9: 0, 112: 1, 224: 2, 447: 2, 448: 3, 2000: 3}
    for side, level in cases.items():
        assert roi_levels(_square(side), 4).item() == level, side


def test_pooled_features_come_from_the_assigned_level():
    feats = [torch.randn(2, 3, 64 // s, 64 // s) for s in (1, 2, 4, 8)]
    boxes = torch.tensor([[[0.0, 0.0, 30.0, 30.0], [2.0, 3.0, 60.0, 63.0]], [[5.0, 5.0, 250.0, 250.0], [1.0, 1.0, 500.0, 480.0]]])
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
