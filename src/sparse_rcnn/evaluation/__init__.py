"""Evaluation: COCO box AP as MMDetection's CocoMetric."""

from .coco import METRICS, coco_category_ids, coco_evaluate, detections_to_coco, evaluate, match_categories

__all__ = ["METRICS", "coco_category_ids", "coco_evaluate", "detections_to_coco", "evaluate", "match_categories"]
