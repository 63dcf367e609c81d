"""Inference over many images: the sources they come from and the one loop (decode, resize,
batch by shape, detect, shard, stop, progress) that prediction, evaluation, the service and video
share; wrappers that run a detector on views of each original and merge the answers: tiles
(``TiledDetector``, ``predict_tiled``) and test-time augmentation (``TTADetector``,
``predict_tta``). The ``Detector`` protocol and result shaping live one layer down, in ``models.detector``."""

from .loop import PAD_MODES, Prediction, group_batches, iter_predictions
from .merge import MERGE_METHODS, merge_detections, merge_views
from .sources import DatasetImages, ImageFiles, ImageStream, Item, prepare
from .tiles import TiledDetector, predict_tiled, tile_windows
from .tta import DEFAULT_SCALES as TTA_SCALES
from .tta import TTADetector, predict_tta

__all__ = [
    "PAD_MODES",
    "Prediction",
    "iter_predictions",
    "group_batches",
    "Item",
    "prepare",
    "ImageFiles",
    "DatasetImages",
    "ImageStream",
    "MERGE_METHODS",
    "merge_detections",
    "merge_views",
    "TiledDetector",
    "predict_tiled",
    "tile_windows",
    "TTADetector",
    "TTA_SCALES",
    "predict_tta",
]
