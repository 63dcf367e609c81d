"""Test-time augmentation: a detector run on each image at several scales and mirrored, the
detections mapped back onto the original and merged (``merge.merge_views``).

A view at scale ``s`` is the original resized to ``s`` times the detector's test scale
(``(round(long * s), round(short * s))``, keep-ratio as ``data.resize_for_test``) and given to
``detect_resized`` with its own scale factor, so boxes come back in original pixels. A mirrored
view is the original flipped left-right, then resized; its boxes, in the flipped original's
pixels, map back exactly: ``x1' = W - x2``, ``x2' = W - x1`` (y unchanged). Only
``detect_resized`` is used, so exported graphs work too when they take any input size (the
exports have dynamic shapes). With ``scales=(1.0,)`` and ``flip=False`` the one view is returned
as is: plain prediction.

Like ``TiledDetector``, ``TTADetector`` is a ``Detector`` over originals (``test_scale`` None) and
goes into ``predict_files`` / ``evaluation.detect_dataset`` as any detector; a ``TiledDetector``
around it runs the augmentations on every tile. ``predict_tta`` is the in-memory entry point.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from ..models.detector import Detector, ScoreThr
from .merge import check_merge, concat_detections, merge_views
from .views import OriginalsDetector, detect_views, predict_one

DEFAULT_SCALES = (0.8, 1.0, 1.2)


def scaled_test_scale(test_scale: tuple[int, int], s: float) -> tuple[int, int]:
    """``test_scale`` (long max, short max) times ``s``, rounded, at least 1 pixel."""
    return max(1, round(test_scale[0] * s)), max(1, round(test_scale[1] * s))


def unflip(det: dict[str, Tensor], width: int) -> dict[str, Tensor]:
    """Detections on the left-right mirrored image (``boxes`` (k, 4) xyxy) -> on the image of ``width``."""
    boxes = det["boxes"]
    return {**det, "boxes": torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)}


class TTADetector(OriginalsDetector):
    """``detector`` run on each original at ``scales`` of its test scale, each also mirrored when
    ``flip``; merged as ``merge.merge_views`` (``merge``, ``iou_thr``, ``match``, ``max_detections``).
    ``batch_size``: views per forward (views of one scale share a shape and batch together)."""

    def __init__(
        self,
        detector: Detector,
        *,
        scales: Sequence[float] = DEFAULT_SCALES,
        flip: bool = True,
        merge: str = "nms",
        iou_thr: float = 0.5,
        match: str = "iou",
        max_detections: Optional[int] = None,
        batch_size: int = 8,
    ) -> None:
        if detector.test_scale is None:
            raise ValueError("`detector` must have a test scale: put TTADetector inside a TiledDetector, not around it")
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"`scales` must be one or more positive numbers, got {tuple(scales)}")
        check_merge(merge, iou_thr, match)
        if max_detections is not None and max_detections < 1:
            raise ValueError(f"`max_detections` must be >= 1, got {max_detections}")
        super().__init__(detector)
        self.scales, self.flip = tuple(float(s) for s in scales), flip
        self.merge, self.iou_thr, self.match, self.max_detections = merge, iou_thr, match, max_detections
        self.batch_size = batch_size

    def detect_original(self, image: Tensor) -> dict[str, Tensor]:
        """One original (3, H, W) uint8 image -> its merged detections (CPU tensors)."""
        width = int(image.shape[-1])
        views = [image, image.flip(-1)] if self.flip else [image]
        dets: list[dict[str, Tensor]] = []
        for s in self.scales:
            scale = scaled_test_scale(self.detector.test_scale, s)
            found = detect_views(self.detector, views, batch_size=self.batch_size, test_scale=scale)
            dets.append(concat_detections(found[:1]))
            if self.flip:
                dets.append(unflip(concat_detections(found[1:]), width))
        return merge_views(
            dets, merge=self.merge, iou_thr=self.iou_thr, match=self.match, max_detections=self.max_detections
        )


def predict_tta(detector: Detector, image: Any, *, score_thr: ScoreThr = 0.0, **options: Any) -> dict[str, Any]:
    """Test-time augmented prediction on one image (a path, PIL image, array, tensor) -> ``boxes``
    (k, 4) in its pixels, ``scores``, ``labels``, ``categories``, as ``models.detector.predict``.
    ``options``: those of ``TTADetector`` (scales, flip, merge, iou_thr, match, max_detections)."""
    return predict_one(TTADetector(detector, **options), detector, image, score_thr)
