"""Randomized properties (hypothesis) of the pure pieces: box decoding, FPN levels, matching, the
set loss, test-time resize and the training transforms. Example-based tests live beside each
module's own test file; these look for the inputs nobody thought of."""

import itertools
import math

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_rcnn.data.resize import rescale_size
from sparse_rcnn.data.transforms import PIPELINES, build_train_transform
from sparse_rcnn.models.criterion import SetCriterion
from sparse_rcnn.models.head import MAX_LOG_SCALE, decode_boxes
from sparse_rcnn.models.matcher import HungarianMatcher
from sparse_rcnn.models.pooler import roi_levels

PROPS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**31 - 1)


def random_boxes(g: torch.Generator, n: int, w: float, h: float, min_size: float = 0.0) -> torch.Tensor:
    """(n, 4) xyxy boxes inside a w x h image, each side >= min_size (zero allowed when 0)."""
    x1 = torch.rand(n, generator=g) * (w - min_size)
    y1 = torch.rand(n, generator=g) * (h - min_size)
    x2 = x1 + min_size + torch.rand(n, generator=g) * (w - x1 - min_size)
    y2 = y1 + min_size + torch.rand(n, generator=g) * (h - y1 - min_size)
    return torch.stack([x1, y1, x2, y2], dim=1)


# --------------------------------------------------------------------------------------------
# head.decode_boxes


@PROPS
@given(seed=SEEDS, n=st.integers(1, 32), log_mag=st.floats(-3, 8))
def test_decode_is_finite_ordered_and_clamped(seed, n, log_mag):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(g, n, 1333.0, 800.0, min_size=1.0)
    deltas = torch.randn(n, 4, generator=g) * 10.0**log_mag  # up to 1e8: far beyond any trained head
    out = decode_boxes(boxes, deltas)
    assert out.shape == (n, 4) and torch.isfinite(out).all()
    assert (out[:, 2] >= out[:, 0]).all() and (out[:, 3] >= out[:, 1]).all()
    # The size changes by at most exp(+-MAX_LOG_SCALE). (float64 and moderate centre shifts, so
    # that x2 - x1 is not lost to the rounding of far-away coordinates.)
    boxes, deltas = boxes.double(), torch.cat([deltas[:, :2].clamp(-4, 4), deltas[:, 2:]], dim=1).double()
    wide = decode_boxes(boxes, deltas)
    ratio = (wide[:, 2:] - wide[:, :2]) / (boxes[:, 2:] - boxes[:, :2])
    limit = math.exp(MAX_LOG_SCALE)
    assert (ratio <= limit * (1 + 1e-9)).all() and (ratio >= (1 - 1e-9) / limit).all()


# --------------------------------------------------------------------------------------------
# pooler.roi_levels


@PROPS
@given(seed=SEEDS, n=st.integers(1, 64), num_levels=st.integers(1, 5), max_side=st.floats(1, 5000))
def test_roi_levels_in_range_and_monotone_in_size(seed, n, num_levels, max_side):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(g, n, max_side, max_side)  # zero-size boxes included
    levels = roi_levels(boxes, num_levels)
    assert levels.dtype == torch.int64 and ((levels >= 0) & (levels < num_levels)).all()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = torch.argsort(area)
    assert (levels[order].diff() >= 0).all()  # a larger box never goes to a finer level


# --------------------------------------------------------------------------------------------
# matcher.HungarianMatcher


def brute_force_min(cost: np.ndarray) -> float:
    n, m = cost.shape
    if m <= n:
        return min(cost[list(rows), range(m)].sum() for rows in itertools.permutations(range(n), m))
    return min(cost[range(n), list(cols)].sum() for cols in itertools.permutations(range(m), n))


@PROPS
@given(seed=SEEDS, n=st.integers(1, 6), m=st.integers(0, 6), c=st.integers(1, 4))
def test_matching_is_one_to_one_and_optimal(seed, n, m, c):
    g = torch.Generator().manual_seed(seed)
    w, h = 80.0, 60.0
    logits = torch.randn(1, n, c, generator=g) * 3
    boxes = random_boxes(g, n, w, h)[None]
    target = {"boxes": random_boxes(g, m, w, h, min_size=1.0), "labels": torch.randint(0, c, (m,), generator=g)}
    sizes = torch.tensor([[int(h), int(w)]])
    matcher = HungarianMatcher()
    [(rows, cols)] = matcher(logits, boxes, [target], sizes)
    assert len(rows) == len(cols) == min(n, m)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert rows.tolist() == sorted(rows.tolist())
    if m == 0:
        return
    cost = matcher.cost(logits[0], boxes[0], target["labels"], target["boxes"], torch.tensor([w, h, w, h])).numpy()
    assert np.isfinite(cost).all()
    assert math.isclose(cost[rows, cols].sum(), brute_force_min(cost.astype(np.float64)), rel_tol=1e-5, abs_tol=1e-4)


# --------------------------------------------------------------------------------------------
# criterion.SetCriterion


@PROPS
@given(
    seed=SEEDS,
    b=st.integers(1, 2),
    n=st.integers(1, 6),
    c=st.integers(1, 4),
    counts=st.lists(st.integers(0, 4), min_size=2, max_size=2),
    logit_scale=st.sampled_from([0.1, 3.0, 30.0]),
    degenerate=st.booleans(),
)
def test_set_loss_finite_with_finite_gradients(seed, b, n, c, counts, logit_scale, degenerate):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.tensor([[48, 64], [40, 72]])[:b]
    targets = [
        {
            "boxes": random_boxes(g, k, float(wh[1]), float(wh[0]), min_size=1.0),
            "labels": torch.randint(0, c, (k,), generator=g),
        }
        for k, wh in zip(counts[:b], sizes)
    ]
    logits = [(torch.randn(b, n, c, generator=g) * logit_scale).requires_grad_() for _ in range(2)]
    boxes = []
    for _ in range(2):
        per_image = [random_boxes(g, n, float(wh[1]), float(wh[0])) for wh in sizes]
        stage = torch.stack(per_image)
        if degenerate:  # collapsed predictions: zero width and height
            stage = torch.cat([stage[..., :2], stage[..., :2]], dim=-1)
        boxes.append(stage.requires_grad_())
    criterion = SetCriterion(num_classes=c, matcher=HungarianMatcher())
    losses = criterion(logits, boxes, targets, sizes)
    assert set(losses) == {f"s{k}.{name}" for k in range(2) for name in ("loss_cls", "loss_bbox", "loss_iou")}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    if sum(counts[:b]) == 0:
        assert all(losses[f"s{k}.{name}"].item() == 0 for k in range(2) for name in ("loss_bbox", "loss_iou"))
    sum(losses.values()).backward()
    for t in logits + boxes:
        assert t.grad is not None and torch.isfinite(t.grad).all()


# --------------------------------------------------------------------------------------------
# preprocess.rescale_size


@settings(deadline=None, max_examples=300)
@given(w=st.integers(1, 20000), h=st.integers(1, 20000), a=st.integers(1, 2000), b=st.integers(1, 2000))
def test_rescale_fits_the_scale_and_keeps_the_ratio(w, h, a, b):
    long_max, short_max = max(a, b), min(a, b)
    new_w, new_h = rescale_size(w, h, (a, b))
    assert new_w >= 1 and new_h >= 1
    assert max(new_w, new_h) <= long_max and min(new_w, new_h) <= short_max
    assert max(new_w, new_h) == long_max or min(new_w, new_h) == short_max  # one limit is reached
    if min(new_w, new_h) > 1:  # not floored to 1 pixel: each side is rounded from the same scale
        assert abs(new_w * h - new_h * w) <= 0.5 * (w + h)


# --------------------------------------------------------------------------------------------
# transforms.build_train_transform


@settings(deadline=None, max_examples=200)
@given(
    seed=SEEDS,
    pipeline=st.sampled_from(PIPELINES),
    h=st.integers(1, 120),
    w=st.integers(1, 120),
    n=st.integers(0, 12),
    flip_prob=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_train_transforms_keep_boxes_valid_inside_the_image(seed, pipeline, h, w, n, flip_prob):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    size = rng.uniform(1, [max(w / 3, 1), max(h / 3, 1)], (n, 2))  # small boxes: crops miss some of them
    x1y1 = rng.uniform(0, 1, (n, 2)) * ([w, h] - size)
    boxes = np.concatenate([x1y1, x1y1 + size], axis=1).astype(np.float32).clip(0, [w, h, w, h])
    labels = rng.integers(0, 5, n).astype(np.int64)
    transform = build_train_transform(
        pipeline=pipeline,
        train_scale=(100, 60),
        ms_short_sides=(40, 52, 64),
        crop_short_sides=(30, 40, 50),
        crop_size=(24, 48),
        flip_prob=flip_prob,
    )
    out_image, out_boxes, out_labels, (sx, sy) = transform(image, boxes, labels, rng)
    oh, ow = out_image.shape[:2]
    assert out_image.dtype == np.uint8 and out_image.ndim == 3 and out_image.shape[2] == 3 and oh >= 1 and ow >= 1
    assert max(oh, ow) <= 100
    assert out_boxes.dtype == np.float32 and out_boxes.shape == (len(out_labels), 4) and len(out_labels) <= n
    assert np.isfinite(out_boxes).all() and sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)
    assert (out_boxes[:, 2] > out_boxes[:, 0]).all() and (out_boxes[:, 3] > out_boxes[:, 1]).all()  # no empty box
    assert (out_boxes[:, :2] >= 0).all() and (out_boxes[:, 2] <= ow).all() and (out_boxes[:, 3] <= oh).all()
    assert set(out_labels.tolist()) <= set(labels.tolist())
    if pipeline != "crop":  # resize and flip never drop a box
        assert len(out_labels) == n
