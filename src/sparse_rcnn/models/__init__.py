"""The detector of the paper (Fig. 3): backbone, learnable proposals, dynamic stages, set loss; the
``Detector`` protocol every runtime follows and the shaping of its results (``detector``); the
builders (``build``)."""

from .backbone import ResNetFPN
from .build import build_model, load_model
from .criterion import SetCriterion
from .detector import Detector, ScoreThr, keep_scores, predict, resolve_score_thr, thresholds_per_label, to_record
from .head import DynamicStage, decode_boxes
from .matcher import HungarianMatcher
from .pooler import MultiLevelRoIAlign
from .postprocess import TopKPostProcess
from .sparse_rcnn import ImageBatcher, SparseRCNN

__all__ = [
    "SparseRCNN",
    "build_model",
    "load_model",
    "Detector",
    "ScoreThr",
    "keep_scores",
    "predict",
    "resolve_score_thr",
    "thresholds_per_label",
    "to_record",
    "ResNetFPN",
    "ImageBatcher",
    "MultiLevelRoIAlign",
    "DynamicStage",
    "decode_boxes",
    "HungarianMatcher",
    "SetCriterion",
    "TopKPostProcess",
]
