"""Score thresholds for deployment: F1 against the score threshold, and the F1-optimal choice.

Sparse R-CNN always returns all its N boxes with sigmoid scores that run lower than a two-stage
detector's, so "which threshold?" has no conventional answer. We pick, on an evaluation set, the
threshold that maximises F1 = 2PR / (P + R) at IoU 0.5, from COCOeval's own matches
(``matches.py``): keeping ``score >= t``, precision P = TP / (TP + FP) and recall R = TP / GT, with
detections matched to crowd boxes ignored. Globally (one threshold, counts pooled over classes)
and per class; a class whose F1 is 0 everywhere (no ground truth, or never found) gets the global
threshold. Ties go to the highest threshold (fewest boxes). Candidates are the detection scores
themselves, so the optimum is exact, not read off a grid.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from .matches import Matches

log = logging.getLogger(__name__)


def f1_table(score: np.ndarray, tp: np.ndarray, ignored: np.ndarray, num_gt: int) -> dict[str, np.ndarray]:
    """Every distinct score t (high to low) as a threshold ``score >= t``: ``threshold``, ``tp``,
    ``fp``, ``precision``, ``recall``, ``f1`` (each (n,)). Inputs: (D,) per detection."""
    order = np.argsort(-score, kind="stable")
    s, t, ig = score[order], tp[order], ignored[order]
    cum_tp = np.cumsum(t & ~ig)
    cum_fp = np.cumsum(~t & ~ig)
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)  # end of each run of equal scores
    tp_n, fp_n = cum_tp[last].astype(np.float64), cum_fp[last].astype(np.float64)
    precision = np.divide(tp_n, tp_n + fp_n, out=np.zeros_like(tp_n), where=tp_n + fp_n > 0)
    recall = tp_n / num_gt if num_gt else np.zeros_like(tp_n)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp_n), where=precision + recall > 0)
    return {"threshold": s[last], "tp": tp_n, "fp": fp_n, "precision": precision, "recall": recall, "f1": f1}


def f1_at(table: dict[str, np.ndarray], grid: np.ndarray) -> np.ndarray:
    """F1 of an ``f1_table`` at each threshold of ``grid`` (keeping ``score >= t``; 0 above the top score)."""
    thr = table["threshold"][::-1]  # ascending
    # the table row of threshold t is the smallest candidate >= t
    idx = np.searchsorted(thr, grid, side="left")
    out = np.zeros(len(grid))
    ok = idx < len(thr)
    out[ok] = table["f1"][::-1][idx[ok]]
    return out


def best(table: dict[str, np.ndarray]) -> Optional[dict[str, float]]:
    """The F1-optimal row of an ``f1_table`` (highest threshold among ties); None if F1 is 0 everywhere."""
    if not len(table["f1"]) or table["f1"].max() <= 0:
        return None
    i = int(np.argmax(table["f1"]))  # first maximum = highest threshold
    return {k: float(v[i]) for k, v in table.items()}


def class_tables(matches: Matches) -> list[dict[str, np.ndarray]]:
    """``f1_table`` of each class."""
    num_gt = matches.num_gt()
    out = []
    for k in range(matches.num_classes):
        sel = matches.det_label == k
        out.append(f1_table(matches.det_score[sel], matches.det_tp[sel], matches.det_ignored[sel], int(num_gt[k])))
    return out


def global_table(matches: Matches) -> dict[str, np.ndarray]:
    """``f1_table`` with one threshold for all classes (counts pooled)."""
    return f1_table(matches.det_score, matches.det_tp, matches.det_ignored, int(matches.num_gt().sum()))


def choose_thresholds(matches: Matches, *, source: str = "") -> Optional[dict]:
    """The F1-optimal score thresholds, as stored in checkpoints and ONNX files (plain JSON):
    ``{"global", "per_class" (C,), "class_names", "f1", "precision", "recall", "per_class_f1" (C,),
    "fallback" (classes given the global threshold), "iou", "source"}``. None when no threshold
    gives any true positive."""
    top = best(global_table(matches))
    if top is None:
        log.warning("no score threshold gives a true positive at IoU %.2f; none chosen", matches.iou)
        return None
    per_class, per_f1, fallback = [], [], []
    for name, table in zip(matches.class_names, class_tables(matches)):
        row = best(table)
        per_class.append(row["threshold"] if row else top["threshold"])
        per_f1.append(row["f1"] if row else 0.0)
        if row is None:
            fallback.append(name)
    return {
        "global": top["threshold"],
        "per_class": per_class,
        "class_names": list(matches.class_names),
        "f1": top["f1"],
        "precision": top["precision"],
        "recall": top["recall"],
        "per_class_f1": per_f1,
        "fallback": fallback,
        "iou": matches.iou,
        "source": source,
    }
