"""Which detection COCO matched to which ground-truth box, read out of a ``COCOeval``.

The error analysis (``errors.py``) and the score thresholds (``thresholds.py``) use COCOeval's own
matching rather than a second implementation, so their true/false positives are exactly those
behind the AP: per image and category, detections in descending score order each take the
unmatched ground-truth box of highest IoU >= the threshold; a detection matched to a crowd (or
``ignore``) box is ignored, neither true nor false. That matching is greedy by score, so the
matches of the detections with score >= t do not depend on the detections below t: keeping only
``score >= t`` afterwards gives the matching COCO would have made on the kept detections alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass
class Matches:
    """All detections (D) and ground-truth boxes (G) of an evaluation at IoU ``iou``.

    Boxes are COCO ``[x, y, w, h]`` in image pixels; labels are indices into ``class_names`` /
    ``cat_ids``. ``det_gt`` is the index of the matched ground-truth box or -1; ``det_tp`` marks
    true positives, ``det_ignored`` detections matched to a crowd/ignored box; ``gt_ignored``
    marks crowd/ignored ground truth (never a miss)."""

    class_names: list[str]
    cat_ids: list[int]
    image_ids: list[int]
    iou: float
    det_image: np.ndarray  # (D,) int64 image id
    det_label: np.ndarray  # (D,) int64
    det_score: np.ndarray  # (D,) float64
    det_box: np.ndarray  # (D, 4) float64 xywh
    det_gt: np.ndarray  # (D,) int64
    det_tp: np.ndarray  # (D,) bool
    det_ignored: np.ndarray  # (D,) bool
    gt_image: np.ndarray  # (G,) int64 image id
    gt_label: np.ndarray  # (G,) int64
    gt_box: np.ndarray  # (G, 4) float64 xywh
    gt_ignored: np.ndarray  # (G,) bool

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def num_gt(self) -> np.ndarray:
        """(C,) ground-truth boxes per class that count (crowd/ignored left out)."""
        return np.bincount(self.gt_label[~self.gt_ignored], minlength=self.num_classes)


def matches_from_cocoeval(coco_eval, *, iou: float = 0.5, class_names: Optional[Sequence[str]] = None) -> Matches:
    """The matches of an evaluated ``COCOeval`` (``evaluation.run_cocoeval``) at IoU threshold
    ``iou`` (one of its ``params.iouThrs``), area range "all". ``class_names``: one per
    ``params.catIds`` (default: the categories' names)."""
    p = coco_eval.params
    t = int(np.argmin(np.abs(np.asarray(p.iouThrs) - iou)))
    if abs(p.iouThrs[t] - iou) > 1e-9:
        raise ValueError(f"IoU {iou} is not one of the evaluation's thresholds {list(p.iouThrs)}")
    cat_ids = list(p.catIds)
    names = (
        list(class_names)
        if class_names is not None
        else [str(coco_eval.cocoGt.cats[c].get("name", c)) for c in cat_ids]
    )
    gt_anns, dt_anns = coco_eval.cocoGt.anns, coco_eval.cocoDt.anns
    n_img, n_area = len(p.imgIds), len(p.areaRng)
    gts: dict[int, int] = {}  # annotation id -> row
    gt_rows: list[tuple] = []
    det_rows: list[tuple] = []
    for k in range(len(cat_ids)):
        for e in coco_eval.evalImgs[k * n_area * n_img : k * n_area * n_img + n_img]:  # area range 0: "all"
            if e is None:
                continue
            for gid, ignored in zip(e["gtIds"], e["gtIgnore"]):
                gts[gid] = len(gt_rows)
                gt_rows.append((e["image_id"], k, gt_anns[gid]["bbox"], bool(ignored)))
            for j, did in enumerate(e["dtIds"]):
                matched, ignored = int(e["dtMatches"][t, j]), bool(e["dtIgnore"][t, j])
                det_rows.append((e["image_id"], k, dt_anns[did]["score"], dt_anns[did]["bbox"], matched, ignored))
    det_gt = np.asarray([gts[m] if m else -1 for *_, m, _ in det_rows], dtype=np.int64)
    det_ignored = np.asarray([r[5] for r in det_rows], dtype=bool)
    return Matches(
        class_names=names,
        cat_ids=cat_ids,
        image_ids=list(p.imgIds),
        iou=float(p.iouThrs[t]),
        det_image=np.asarray([r[0] for r in det_rows], dtype=np.int64),
        det_label=np.asarray([r[1] for r in det_rows], dtype=np.int64),
        det_score=np.asarray([r[2] for r in det_rows], dtype=np.float64),
        det_box=np.asarray([r[3] for r in det_rows], dtype=np.float64).reshape(-1, 4),
        det_gt=det_gt,
        det_tp=(det_gt >= 0) & ~det_ignored,
        det_ignored=det_ignored,
        gt_image=np.asarray([r[0] for r in gt_rows], dtype=np.int64),
        gt_label=np.asarray([r[1] for r in gt_rows], dtype=np.int64),
        gt_box=np.asarray([r[2] for r in gt_rows], dtype=np.float64).reshape(-1, 4),
        gt_ignored=np.asarray([r[3] for r in gt_rows], dtype=bool),
    )
