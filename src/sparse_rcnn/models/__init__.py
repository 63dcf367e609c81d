"""The detector of the paper (Fig. 3): backbone, learnable proposals, dynamic stages, set loss."""

from .backbone import ResNetFPN
from .criterion import SetCriterion
from .head import DynamicStage, decode_boxes
from .matcher import HungarianMatcher
from .pooler import MultiLevelRoIAlign
from .postprocess import TopKPostProcess
from .sparse_rcnn import ImageBatcher, SparseRCNN, build_model

__all__ = [
    "SparseRCNN",
    "build_model",
    "ResNetFPN",
    "ImageBatcher",
    "MultiLevelRoIAlign",
    "DynamicStage",
    "decode_boxes",
    "HungarianMatcher",
    "SetCriterion",
    "TopKPostProcess",
]
