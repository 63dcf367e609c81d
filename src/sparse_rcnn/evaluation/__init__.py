"""Evaluation: COCO box AP as MMDetection's CocoMetric, Pascal VOC AP50 as its VOCMetric, and the
error analysis behind the report (matches, confusion matrix, worst images, F1-optimal score thresholds)."""

from .analysis import Analysis, analyse
from .categories import add_categories, match_categories
from .coco import (
    METRICS,
    EvaluationStopped,
    coco_category_ids,
    coco_evaluate,
    cocoeval_metrics,
    detect_dataset,
    detections_to_coco,
    evaluate,
    run_cocoeval,
)
from .errors import ImageErrors, analyse_errors, worst_images
from .matches import Matches, matches_from_cocoeval
from .thresholds import choose_thresholds
from .voc import voc_evaluate

__all__ = [
    "METRICS",
    "EvaluationStopped",
    "coco_category_ids",
    "coco_evaluate",
    "cocoeval_metrics",
    "detect_dataset",
    "detections_to_coco",
    "evaluate",
    "match_categories",
    "add_categories",
    "run_cocoeval",
    "Analysis",
    "analyse",
    "ImageErrors",
    "analyse_errors",
    "worst_images",
    "Matches",
    "matches_from_cocoeval",
    "choose_thresholds",
    "voc_evaluate",
]
