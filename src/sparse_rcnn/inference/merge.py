"""Merging the detections of several views of one image (tiles, test-time augmentations) into one
set: class-wise NMS (``"nms"``), weighted box fusion (``"wbf"``), or SAHI's greedy non-maximum
merging (``"nmm"``); then the ``max_detections`` best.

- ``"nms"``: ``torchvision.ops.batched_nms`` per class; a box whose IoU with a better one of its
  class is above ``iou_thr`` is dropped.
- ``"wbf"``: boxes of one class in score order join the cluster whose fused box they overlap most,
  if that IoU is above ``iou_thr``; a cluster's box is the score-weighted mean of its boxes, its score
  the highest of them (views see different parts of an image, so no view count rescales it).
- ``"nmm"``: SAHI's ``GREEDYNMM`` with ``match="ios"`` (intersection over the smaller box) or
  ``"iou"``: in score order, a kept box absorbs every box of its class it matches above
  ``iou_thr`` (``>=``, not transitively) and grows to their union, each absorbed box checked again
  against the grown box as SAHI's ``_apply_merge`` does (a claimed box that no longer matches is
  dropped); its score is the highest. Suited to a box cut by a tile border, which lies inside the
  whole box.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou

MERGE_METHODS = ("nms", "wbf", "nmm")
MATCH_METRICS = ("iou", "ios")


def concat_detections(dets: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
    """Per-view detections -> one dict of CPU tensors: ``boxes`` (N, 4) float32, ``scores`` (N,),
    ``labels`` (N,) int64."""
    boxes = [torch.as_tensor(d["boxes"]).cpu().float().reshape(-1, 4) for d in dets]
    scores = [torch.as_tensor(d["scores"]).cpu().float().reshape(-1) for d in dets]
    labels = [torch.as_tensor(d["labels"]).cpu().long().reshape(-1) for d in dets]
    if not dets:
        return {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    return {"boxes": torch.cat(boxes), "scores": torch.cat(scores), "labels": torch.cat(labels)}


def check_merge(merge: str, iou_thr: float, match: str = "iou") -> None:
    """Raise ``ValueError`` naming the parameter when ``merge``, ``iou_thr`` or ``match`` is invalid."""
    if merge not in MERGE_METHODS:
        raise ValueError(f"`merge` must be one of {MERGE_METHODS}, got {merge!r}")
    if not 0.0 <= iou_thr <= 1.0:
        raise ValueError(f"`iou_thr` must be within [0, 1], got {iou_thr}")
    if match not in MATCH_METRICS:
        raise ValueError(f"`match` must be one of {MATCH_METRICS}, got {match!r}")


def merge_detections(
    det: dict[str, Tensor],
    *,
    merge: str = "nms",
    iou_thr: float = 0.5,
    match: str = "iou",
    max_detections: Optional[int] = None,
) -> dict[str, Tensor]:
    """Detections of all views (``concat_detections``) -> the merged set, sorted by score (stable),
    at most ``max_detections`` (None: all). ``match`` is used by ``merge="nmm"`` only."""
    check_merge(merge, iou_thr, match)
    boxes, scores, labels = det["boxes"], det["scores"], det["labels"]
    if merge == "nms":
        keep = batched_nms(boxes, scores, labels, iou_thr)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    elif merge == "wbf":
        boxes, scores, labels = _weighted_fusion(boxes, scores, labels, iou_thr)
    else:
        boxes, scores, labels = _greedy_nmm(boxes, scores, labels, iou_thr, match)
    order = torch.argsort(scores, descending=True, stable=True)
    if max_detections is not None:
        order = order[:max_detections]
    return {"boxes": boxes[order], "scores": scores[order], "labels": labels[order]}


def _weighted_fusion(boxes: Tensor, scores: Tensor, labels: Tensor, iou_thr: float) -> tuple[Tensor, Tensor, Tensor]:
    out_boxes, out_scores, out_labels = [], [], []
    for label in labels.unique().tolist():
        idx = (labels == label).nonzero().flatten()
        idx = idx[torch.argsort(scores[idx], descending=True, stable=True)]
        fused: list[Tensor] = []  # score-weighted box sums, divided by the weights below
        weights: list[float] = []
        best: list[float] = []
        for i in idx.tolist():
            if fused:
                current = torch.stack([f / w for f, w in zip(fused, weights)])
                ious = box_iou(boxes[i : i + 1], current)[0]
                j = int(ious.argmax())
                if ious[j] > iou_thr:
                    fused[j] = fused[j] + boxes[i] * scores[i]
                    weights[j] += float(scores[i])
                    continue
            fused.append(boxes[i] * scores[i])
            weights.append(float(scores[i]))
            best.append(float(scores[i]))
        for f, w, s in zip(fused, weights, best):
            out_boxes.append(f / w if w > 0 else f)
            out_scores.append(s)
            out_labels.append(label)
    if not out_boxes:
        return boxes[:0], scores[:0], labels[:0]
    return torch.stack(out_boxes), torch.tensor(out_scores), torch.tensor(out_labels, dtype=labels.dtype)


def _pairwise(boxes: Tensor, match: str) -> Tensor:
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(-1)
    if match == "iou":
        denom = area[:, None] + area[None, :] - inter
    else:
        denom = torch.minimum(area[:, None], area[None, :])
    return torch.where(denom > 0, inter / denom.clamp(min=1e-12), torch.zeros_like(inter))


def _greedy_nmm(boxes: Tensor, scores: Tensor, labels: Tensor, thr: float, match: str) -> tuple[Tensor, Tensor, Tensor]:
    out_boxes, out_scores, out_labels = [], [], []
    for label in labels.unique().tolist():
        idx = (labels == label).nonzero().flatten()
        idx = idx[torch.argsort(scores[idx], descending=True, stable=True)]
        cls_boxes = boxes[idx]
        metric = _pairwise(cls_boxes, match)
        taken = torch.zeros(len(idx), dtype=torch.bool)
        for a in range(len(idx)):
            if taken[a]:
                continue
            taken[a] = True
            members = (~taken) & (metric[a] >= thr)
            members[:a] = False
            taken |= members
            box = cls_boxes[a].clone()
            for b in members.nonzero().flatten().tolist():  # in score order, each checked against the grown box
                if _pairwise(torch.stack([box, cls_boxes[b]]), match)[0, 1] >= thr:
                    box[:2] = torch.minimum(box[:2], cls_boxes[b, :2])
                    box[2:] = torch.maximum(box[2:], cls_boxes[b, 2:])
            out_boxes.append(box)
            out_scores.append(float(scores[idx[a]]))
            out_labels.append(label)
    if not out_boxes:
        return boxes[:0], scores[:0], labels[:0]
    return torch.stack(out_boxes), torch.tensor(out_scores), torch.tensor(out_labels, dtype=labels.dtype)


def merge_views(
    dets: Sequence[dict[str, Any]],
    *,
    merge: str = "nms",
    iou_thr: float = 0.5,
    match: str = "iou",
    max_detections: Optional[int] = None,
) -> dict[str, Tensor]:
    """The detections of each view, in one frame of pixels -> one merged set, sorted by score.
    A single view is returned as the model gave it (sorted, cut to ``max_detections``), not merged
    with itself, so one view equals plain prediction. ``max_detections`` None: the most any view
    returned (the model's per-image count)."""
    limit = max_detections if max_detections is not None else max((len(d["scores"]) for d in dets), default=0)
    det = concat_detections(dets)
    if len(dets) == 1:
        order = torch.argsort(det["scores"], descending=True, stable=True)[:limit]
        return {k: v[order] for k, v in det.items()}
    return merge_detections(det, merge=merge, iou_thr=iou_thr, match=match, max_detections=limit)
