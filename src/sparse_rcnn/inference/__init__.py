"""Inference over many images: the sources they come from and the one loop (decode, resize,
batch by shape, detect, shard, stop, progress) that prediction, evaluation, the service and video
share. The ``Detector`` protocol and result shaping live one layer down, in ``models.detector``."""

from .loop import PAD_MODES, Prediction, group_batches, iter_predictions
from .sources import DatasetImages, ImageFiles, ImageStream, Item, prepare

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
]
