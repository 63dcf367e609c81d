"""Evaluation: COCO box AP as MMDetection's CocoMetric; Pascal VOC AP50 as its VOCMetric."""

from .coco import METRICS, coco_category_ids, coco_evaluate, detections_to_coco, evaluate, match_categories
from .voc import voc_evaluate

__all__ = ["METRICS", "coco_category_ids", "coco_evaluate", "detections_to_coco", "evaluate", "match_categories",
           "voc_evaluate"]
