"""Everything the evaluation report shows, as data: per-class AP, precision-recall curves, score
thresholds, the confusion matrix and the worst images (``visualize.report`` draws it).

All of it comes from one ``COCOeval`` run (``coco.run_cocoeval``): the precision-recall curves are
its ``eval["precision"]`` array, the matches its ``evalImgs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .coco import cocoeval_metrics
from .errors import ImageErrors, analyse_errors, normalise_rows
from .matches import Matches, matches_from_cocoeval
from .thresholds import choose_thresholds, class_tables, global_table

PR_IOUS = (0.5, 0.75)


@dataclass
class Analysis:
    """The report's content. ``pr[iou]``: (R, C) precision at COCO's 101 recall points ``recall``
    (-1 where a class has no ground truth); ``ap[iou]`` (C,) and ``ap_all`` (C,) AP@[.5:.95];
    ``thresholds``: ``choose_thresholds``' dict or None; ``confusion`` (C + 1, C + 1) at the
    per-class thresholds (the global one where none was chosen)."""

    class_names: list[str]
    metrics: dict[str, float]
    recall: np.ndarray
    pr: dict[float, np.ndarray]
    ap: dict[float, np.ndarray]
    ap_all: np.ndarray
    num_gt: np.ndarray
    matches: Matches
    f1_global: dict[str, np.ndarray]
    f1_per_class: list[dict[str, np.ndarray]]
    thresholds: Optional[dict]
    confusion: np.ndarray
    images: list[ImageErrors]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def applied_thresholds(self) -> list[float]:
        """The per-class thresholds the confusion matrix and gallery use (1.0 when none chosen)."""
        return list(self.thresholds["per_class"]) if self.thresholds else [1.0] * self.num_classes

    def summary(self) -> dict:
        """JSON-able: metrics (with per-class AP), thresholds, confusion matrix."""
        c = self.num_classes
        return {
            **self.metrics,
            "per_class": [
                {
                    "class": name,
                    "ap": _num(self.ap_all[k]),
                    "ap_50": _num(self.ap[0.5][k]),
                    "ap_75": _num(self.ap[0.75][k]),
                    "num_gt": int(self.num_gt[k]),
                    "score_thr": self.applied_thresholds()[k] if self.thresholds else None,
                }
                for k, name in enumerate(self.class_names)
            ],
            "score_thresholds": self.thresholds,
            "confusion_matrix": confusion_json(self.confusion, self.class_names, self.applied_thresholds()),
            "num_classes": c,
        }


def _num(v: float) -> Optional[float]:
    return None if v < 0 else float(v)


def _mean_valid(p: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` of the entries > -1 (COCO's convention), -1 where none is."""
    valid = p > -1
    n = valid.sum(axis=axis)
    s = np.where(valid, p, 0).sum(axis=axis)
    return np.where(n > 0, s / np.maximum(n, 1), -1.0)


def analyse(coco_eval, *, class_names: Optional[Sequence[str]] = None, source: str = "") -> Analysis:
    """The ``Analysis`` of an evaluated ``COCOeval`` (not None). ``class_names``: one per
    ``params.catIds`` (default: the category names); ``source`` names the evaluation set in the
    chosen thresholds."""
    matches = matches_from_cocoeval(coco_eval, iou=0.5, class_names=class_names)
    names = matches.class_names
    metrics = cocoeval_metrics(coco_eval, classwise=False)
    precision = coco_eval.eval["precision"]  # (T, R, K, A, M)
    iou_thrs = np.asarray(coco_eval.params.iouThrs)
    pr, ap = {}, {}
    for iou in PR_IOUS:
        t = int(np.argmin(np.abs(iou_thrs - iou)))
        pr[iou] = precision[t, :, :, 0, -1]
        ap[iou] = _mean_valid(pr[iou], axis=0)
    ap_all = _mean_valid(precision[:, :, :, 0, -1].reshape(-1, len(names)), axis=0)
    for k, name in enumerate(names):
        metrics[f"bbox_AP_{name}"] = float(ap_all[k])
    thresholds = choose_thresholds(matches, source=source)
    applied = thresholds["per_class"] if thresholds else 1.0
    confusion, images = analyse_errors(matches, applied)
    return Analysis(
        class_names=names,
        metrics=metrics,
        recall=np.asarray(coco_eval.params.recThrs),
        pr=pr,
        ap=ap,
        ap_all=ap_all,
        num_gt=matches.num_gt(),
        matches=matches,
        f1_global=global_table(matches),
        f1_per_class=class_tables(matches),
        thresholds=thresholds,
        confusion=confusion,
        images=images,
    )


def confusion_json(matrix: np.ndarray, class_names: Sequence[str], thresholds: Sequence[float]) -> dict:
    """The confusion matrix as JSON: labels (classes + "background"), counts and row-normalised."""
    return {
        "rows": "ground truth",
        "columns": "prediction",
        "iou": 0.5,
        "labels": [*class_names, "background"],
        "score_thresholds": [float(t) for t in thresholds],
        "counts": matrix.tolist(),
        "normalised": np.round(normalise_rows(matrix), 4).tolist(),
    }
