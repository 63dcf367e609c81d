"""Error analysis at a score threshold: the detection confusion matrix and the worst images.

The matrix is (C + 1, C + 1): rows are the ground truth's class, columns the prediction's, the last
row and column "background". It is built from the kept detections (``score >= threshold`` of
their class) in two passes per image:

1. COCO's own matches at IoU 0.5 (``matches.py``): a true positive adds 1 to ``[c, c]``.
2. The kept detections COCO left unmatched (not those it ignored on crowd boxes), in descending
   score order, each take the not yet matched, non-crowd ground-truth box of another class with
   the highest IoU >= 0.5 (pycocotools' IoU): ``[true class, predicted class]``, a confusion.

What remains is a false alarm (``[background, predicted]``) or a miss (``[true, background]``).
Every ground-truth box is counted once and every kept detection at most once, so per class the
true positives, false positives (column minus diagonal) and misses (row minus diagonal) are
exactly COCO's counts behind the F1 of ``thresholds.py``. MMDetection's confusion_matrix.py
instead counts a detection against every box it overlaps, so its rows do not add up to the
ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union, cast

import numpy as np

from .matches import Matches


@dataclass
class ImageErrors:
    """One image's outcome at the threshold: indices into the ``Matches`` arrays."""

    image_id: int
    correct: list[int] = field(default_factory=list)  # detections: true positives
    confused: list[tuple[int, int]] = field(default_factory=list)  # (detection, ground truth of another class)
    false_alarms: list[int] = field(default_factory=list)  # detections matching nothing
    missed: list[int] = field(default_factory=list)  # ground truth not found (confused ones not included)
    found: list[int] = field(default_factory=list)  # ground truth matched by a correct detection

    @property
    def num_errors(self) -> int:
        """Missed plus false boxes; a confusion is both (COCO: a miss and a false positive)."""
        return len(self.missed) + len(self.false_alarms) + 2 * len(self.confused)


def per_label(threshold: Union[float, Sequence[float]], num_classes: int) -> np.ndarray:
    """A global threshold or one per class -> (C,) float64."""
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (num_classes,))
    return thr.copy()


def analyse_errors(matches: Matches, threshold: Union[float, Sequence[float]]) -> tuple[np.ndarray, list[ImageErrors]]:
    """(C + 1, C + 1) int64 confusion matrix (rows: true class, columns: predicted; last: background)
    and every image's ``ImageErrors``, keeping detections with ``score >= threshold`` (a float or
    one per class)."""
    from pycocotools import mask as mask_utils

    c = matches.num_classes
    thr = per_label(threshold, c)
    kept = matches.det_score >= thr[matches.det_label]
    matrix = np.zeros((c + 1, c + 1), dtype=np.int64)
    images = {i: ImageErrors(int(i)) for i in matches.image_ids}
    det_by_image: dict[int, list[int]] = {}
    for d in np.flatnonzero(kept & ~matches.det_ignored).tolist():
        det_by_image.setdefault(int(matches.det_image[d]), []).append(int(d))
    gt_by_image: dict[int, list[int]] = {}
    for g in np.flatnonzero(~matches.gt_ignored).tolist():
        gt_by_image.setdefault(int(matches.gt_image[g]), []).append(int(g))
    for image_id in set(det_by_image) | set(gt_by_image):
        errors = images.setdefault(image_id, ImageErrors(image_id))
        dets = sorted(det_by_image.get(image_id, []), key=lambda d: -matches.det_score[d])
        taken = set()
        rest: list[int] = []
        for d in dets:  # pass 1: COCO's true positives
            if matches.det_tp[d]:
                errors.correct.append(d)
                taken.add(int(matches.det_gt[d]))
            else:
                rest.append(d)
        free: list[Optional[int]] = [g for g in gt_by_image.get(image_id, []) if g not in taken]
        errors.found = sorted(taken)
        if rest and free:  # pass 2: confusions, greedy by score
            ious = mask_utils.iou(
                matches.det_box[rest].tolist(), matches.gt_box[cast("list[int]", free)].tolist(), [0] * len(free)
            )
            ious = np.asarray(ious, dtype=np.float64).reshape(len(rest), len(free))
            for i, d in enumerate(rest):
                ok = [
                    j
                    for j in range(len(free))
                    if free[j] is not None
                    and ious[i, j] >= matches.iou
                    and matches.gt_label[free[j]] != matches.det_label[d]
                ]
                if ok:
                    j = max(ok, key=lambda j: ious[i, j])
                    errors.confused.append((d, cast(int, free[j])))  # ok holds only j with free[j] set
                    free[j] = None
                else:
                    errors.false_alarms.append(d)
        else:
            errors.false_alarms += rest
        errors.missed = [g for g in free if g is not None]
        for d in errors.correct:
            matrix[matches.det_label[d], matches.det_label[d]] += 1
        for d, g in errors.confused:
            matrix[matches.gt_label[g], matches.det_label[d]] += 1
        for d in errors.false_alarms:
            matrix[c, matches.det_label[d]] += 1
        for g in errors.missed:
            matrix[matches.gt_label[g], c] += 1
    return matrix, [images[i] for i in sorted(images)]


def worst_images(errors: list[ImageErrors], count: int) -> list[ImageErrors]:
    """The ``count`` images with the most errors (missed + false boxes), worst first; images
    without any error are left out. Ties: more misses first, then image id."""
    bad = [e for e in errors if e.num_errors > 0]
    bad.sort(key=lambda e: (-e.num_errors, -(len(e.missed) + len(e.confused)), e.image_id))
    return bad[:count]


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (0 for an empty row): where each true class's boxes went, and
    (last row) how the false alarms spread over the predicted classes."""
    sums = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, sums, out=np.zeros(matrix.shape), where=sums > 0)
