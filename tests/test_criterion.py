import torch
from torchvision.ops import sigmoid_focal_loss

from sparse_rcnn.models.criterion import SetCriterion
from sparse_rcnn.models.matcher import HungarianMatcher


def _criterion(c=3):
    return SetCriterion(num_classes=c, matcher=HungarianMatcher())


def _preds(b=2, n=5, c=3, stages=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(b, n, c, generator=g, requires_grad=True) for _ in range(stages)]
    xy = torch.rand(b, n, 2, generator=g) * 40
    boxes = [
        torch.cat([xy, xy + 10 + torch.rand(b, n, 2, generator=g) * 30], -1).requires_grad_() for _ in range(stages)
    ]
    return logits, boxes


EMPTY = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
SIZES = torch.tensor([[80, 100], [90, 70]])


def test_all_empty_targets_give_finite_losses_and_zero_box_loss():
    logits, boxes = _preds()
    losses = _criterion()(logits, boxes, [EMPTY, EMPTY], SIZES)
    assert set(losses) == {f"s{k}.{n}" for k in range(2) for n in ("loss_cls", "loss_bbox", "loss_iou")}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["s0.loss_bbox"] == 0 and losses["s1.loss_iou"] == 0
    # every proposal is background; normaliser clamped to 1
    expected = 2.0 * sigmoid_focal_loss(logits[0], torch.zeros_like(logits[0]), reduction="sum")
    assert torch.allclose(losses["s0.loss_cls"], expected)
    sum(losses.values()).backward()
    assert torch.isfinite(logits[0].grad).all()


def test_half_empty_batch():
    logits, boxes = _preds()
    gt = {"boxes": torch.tensor([[5.0, 5.0, 30.0, 40.0], [40.0, 10.0, 60.0, 70.0]]), "labels": torch.tensor([0, 2])}
    crit = _criterion()
    losses = crit(logits, boxes, [EMPTY, gt], SIZES)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["s0.loss_bbox"] > 0 and losses["s0.loss_iou"] > 0
    assert [len(r) for r, _ in crit.last_matches[0]] == [0, 2]
    # normaliser is the number of GT boxes (2): recompute loss_bbox by hand for the matches
    rows, cols = crit.last_matches[0][1]
    whwh = torch.tensor([70.0, 90.0, 70.0, 90.0])
    l1 = ((boxes[0][1, rows] - gt["boxes"][cols]).abs() / whwh).sum()
    assert torch.allclose(losses["s0.loss_bbox"], 5.0 * l1 / 2.0, rtol=1e-5)


def test_perfect_boxes_have_zero_box_loss():
    gt = {"boxes": torch.tensor([[5.0, 5.0, 30.0, 40.0]]), "labels": torch.tensor([1])}
    logits = [torch.full((1, 3, 3), -5.0)]
    logits[0][0, 1, 1] = 5.0
    boxes = [torch.tensor([[[50.0, 50.0, 60.0, 60.0], [5.0, 5.0, 30.0, 40.0], [0.0, 0.0, 10.0, 10.0]]])]
    losses = _criterion()(logits, boxes, [gt], SIZES[:1])
    assert losses["s0.loss_bbox"].abs() < 1e-6 and losses["s0.loss_iou"].abs() < 1e-6
