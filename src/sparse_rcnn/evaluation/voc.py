"""Pascal VOC detection AP (AP50 per class and its mean, 11-point and area), as MMDetection's
``VOCMetric`` computes it (``mmdet/evaluation/functional/mean_ap.py``: ``tpfp_default``,
``average_precision``, ``eval_map``).

For every class the detections of each image are taken in descending score; one whose best
ground-truth box (by IoU, crowd / VOC-difficult boxes included) reaches ``iou_thr`` is a true
positive if that box is a normal one not yet taken, a false positive if it was taken, and neither
if it is a crowd / difficult box; below ``iou_thr`` it is a false positive. Over all images,
precision and recall in score order give AP: ``11pt`` averages the best precision at recall
>= 0, 0.1, ..., 1 (VOC2007); ``area`` is the area under the monotone precision envelope
(VOC2010+). The mean is over the classes that have ground truth.

Equal scores are taken in the order of the images, then of the detections (a stable sort), where
MMDetection leaves their order to numpy's unstable quicksort: AP differs only where scores tie.
IoU is measured in continuous pixels (width ``x2 - x1``). MMDetection reads VOC boxes one pixel
smaller (``xmax - 1``) and adds the pixel back in its "legacy" IoU; both see the same boxes. We use
numpy float64 where MMDetection uses float32. Written here rather than imported: MMDetection is
not a dependency, and pycocotools has no VOC AP.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional, Sequence

import numpy as np

_EPS = np.finfo(np.float32).eps  # MMDetection's guard against division by zero


def average_precision(recall: np.ndarray, precision: np.ndarray, mode: str = "area") -> float:
    """AP of one class from its (n,) recall and precision in descending score order."""
    if mode == "area":
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[0.0], precision, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the monotone envelope
        changes = np.flatnonzero(mrec[1:] != mrec[:-1])
        return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))
    if mode == "11pt":
        ap = 0.0
        for thr in np.arange(0, 1 + 1e-3, 0.1):  # MMDetection's thresholds, float rounding included
            above = precision[recall >= thr]
            ap += above.max() if above.size else 0.0
        return float(ap / 11)
    raise ValueError(f"mode must be 'area' or '11pt', got {mode!r}")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, n) IoU of (m, 4) and (n, 4) xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, _EPS)


def match_image(
    boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, ignored: np.ndarray, iou_thr: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(m,) true- and false-positive flags of one image's detections of one class (``boxes`` (m, 4)
    xyxy, ``scores`` (m,)) against its (n, 4) ground truth and (k, 4) crowd / difficult boxes."""
    tp, fp = np.zeros(len(boxes)), np.zeros(len(boxes))
    every = np.concatenate([gt, ignored]).reshape(-1, 4)
    if not len(every):
        fp[:] = 1
        return tp, fp
    if not len(boxes):
        return tp, fp
    iou = box_iou(boxes, every)
    best, which = iou.max(axis=1), iou.argmax(axis=1)
    taken = np.zeros(len(every), dtype=bool)
    for i in np.argsort(-scores, kind="stable"):
        if best[i] < iou_thr:
            fp[i] = 1
        elif which[i] < len(gt):  # a detection matched to a crowd / difficult box counts for nothing
            if taken[which[i]]:
                fp[i] = 1
            else:
                taken[which[i]], tp[i] = True, 1
    return tp, fp


def voc_evaluate(
    coco_gt,
    results: list[dict],
    *,
    image_ids: Optional[Sequence[int]] = None,
    cat_ids: Optional[Sequence[int]] = None,
    iou_thr: float = 0.5,
) -> dict[str, float]:
    """VOC AP of COCO ``results`` ([{"image_id", "category_id", "bbox": [x, y, w, h], "score"}])
    against the pycocotools ``coco_gt`` (``iscrowd`` boxes: ignored, as VOC's difficult ones).

    Returns ``voc_AP50`` (area) and ``voc_AP50_11pt``, their means over the categories with
    ground truth, and ``voc_AP50_<name>`` / ``voc_AP50_11pt_<name>`` per category (-1 without
    ground truth). image_ids / cat_ids: what is evaluated (default: all of ``coco_gt``), in the
    order detections are accumulated.
    """
    image_ids = list(coco_gt.getImgIds() if image_ids is None else image_ids)
    cat_ids = list(sorted(coco_gt.getCatIds()) if cat_ids is None else cat_ids)
    dets: dict = defaultdict(list)
    for r in results:
        dets[r["image_id"], r["category_id"]].append(r)
    key = "AP50" if iou_thr == 0.5 else f"AP{round(iou_thr * 100)}"
    metrics: dict[str, float] = {}
    per_class: dict[str, list[float]] = {"area": [], "11pt": []}
    for cat_id in cat_ids:
        tps, fps, scores, num_gt = [], [], [], 0
        for image_id in image_ids:
            anns = [a for a in coco_gt.imgToAnns.get(image_id, []) if a["category_id"] == cat_id]
            gt = _xyxy([a["bbox"] for a in anns if not a.get("iscrowd", 0)])
            ignored = _xyxy([a["bbox"] for a in anns if a.get("iscrowd", 0)])
            found = dets.get((image_id, cat_id), [])
            boxes, score = _xyxy([r["bbox"] for r in found]), np.array([r["score"] for r in found], dtype=np.float64)
            tp, fp = match_image(boxes, score, gt, ignored, iou_thr)
            tps.append(tp)
            fps.append(fp)
            scores.append(score)
            num_gt += len(gt)
        order = np.argsort(-np.concatenate(scores), kind="stable")
        tp, fp = np.cumsum(np.concatenate(tps)[order]), np.cumsum(np.concatenate(fps)[order])
        recall, precision = tp / max(num_gt, _EPS), tp / np.maximum(tp + fp, _EPS)
        name = coco_gt.cats[cat_id].get("name", cat_id)
        for mode, suffix in (("area", ""), ("11pt", "_11pt")):
            ap = average_precision(recall, precision, mode) if num_gt else -1.0
            metrics[f"voc_{key}{suffix}_{name}"] = ap
            if num_gt:
                per_class[mode].append(ap)
    means = {
        f"voc_{key}": float(np.mean(per_class["area"])) if per_class["area"] else 0.0,
        f"voc_{key}_11pt": float(np.mean(per_class["11pt"])) if per_class["11pt"] else 0.0,
    }
    return {**means, **metrics}


def _xyxy(xywh: list) -> np.ndarray:
    b = np.array(xywh, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
