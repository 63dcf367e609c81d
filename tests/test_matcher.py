import itertools

import pytest
import torch

from sparse_rcnn.models.matcher import HungarianMatcher, focal_cost


def _random_case(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, n, 4, generator=g)
    xy = torch.rand(1, n, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(1, n, 2, generator=g) * 40], -1)
    gxy = torch.rand(m, 2, generator=g) * 50
    gt = {
        "boxes": torch.cat([gxy, gxy + 5 + torch.rand(m, 2, generator=g) * 40], -1),
        "labels": torch.randint(0, 4, (m,), generator=g),
    }
    return logits, boxes, gt


@pytest.mark.parametrize("n,m,seed", [(3, 1, 0), (4, 2, 1), (5, 3, 2), (6, 4, 3), (4, 4, 4), (6, 2, 5)])
def test_matches_brute_force(n, m, seed):
    logits, boxes, gt = _random_case(n, m, seed)
    sizes = torch.tensor([[100, 120]])
    matcher = HungarianMatcher()
    ((rows, cols),) = matcher(logits, boxes, [gt], sizes)
    whwh = torch.tensor([120.0, 100.0, 120.0, 100.0])
    cost = matcher.cost(logits[0], boxes[0], gt["labels"], gt["boxes"], whwh)
    best = min(sum(cost[p, j] for j, p in enumerate(perm)) for perm in itertools.permutations(range(n), m))
    assert len(rows) == m and len(set(rows.tolist())) == m and sorted(cols.tolist()) == list(range(m))
    assert torch.isclose(cost[rows, cols].sum(), torch.as_tensor(best), atol=1e-5)


def test_no_targets_and_batch():
    logits, boxes, gt = _random_case(5, 2, 7)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    out = HungarianMatcher()(logits.repeat(2, 1, 1), boxes.repeat(2, 1, 1), [empty, gt], torch.tensor([[100, 120]] * 2))
    assert [len(r) for r, _ in out] == [0, 2]


def test_cost_terms_follow_mmdetection():
    logits = torch.tensor([[0.3, -1.0]])
    prob = logits.sigmoid()
    expected = -(prob + 1e-12).log() * 0.25 * (1 - prob) ** 2 + (1 - prob + 1e-12).log() * 0.75 * prob**2
    assert torch.allclose(focal_cost(logits, torch.tensor([0, 1])), expected)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    whwh = torch.tensor([100.0, 50.0, 100.0, 50.0])
    m = HungarianMatcher(class_weight=0.0, l1_weight=5.0, giou_weight=2.0)
    # L1 on normalised xyxy = 10/50 = 0.2 -> 1.0; GIoU = 0.5 -> -1.0
    assert torch.allclose(m.cost(logits[:, :1], boxes, torch.tensor([0]), gt, whwh), torch.tensor([[0.0]]), atol=1e-6)
