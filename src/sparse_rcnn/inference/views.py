"""Running a detector on views of an image (tiles, augmented copies) made in memory: each view is
resized to the detector's test scale as any image is (``data.resize_for_test``), views of one
resized shape go through ``detect_resized`` together, ``batch_size`` at a time and ``independent``
(so each answer is bit-identical to the view's alone, as the ``"bucket"`` batching of
``iter_predictions``), and the
answers come back in the views' order, in the view's pixels.

A detector whose ``test_scale`` is None (``TiledDetector``, ``TTADetector``) takes views as they
are: it resizes them itself, so the wrappers nest (tiles of test-time augmented detections).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ..data.images import to_image_tensor
from ..data.resize import resize_for_test
from ..models.detector import Detector, ScoreThr, keep_scores, resolve_score_thr


def detect_views(
    detector: Detector, views: list[Tensor], *, batch_size: int = 8, test_scale: Optional[tuple[int, int]] = None
) -> list[dict[str, Any]]:
    """(3, h_i, w_i) uint8 ``views`` -> per view the detections (``boxes`` (k, 4) xyxy in the view's
    pixels, ``scores``, ``labels``). ``test_scale``: resize to this instead of the detector's."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    scale = test_scale if test_scale is not None else detector.test_scale
    if scale is None:
        out: list[dict[str, Any]] = []
        for start in range(0, len(views), batch_size):
            chunk = views[start : start + batch_size]
            out += detector.detect_resized(chunk, [(1.0, 1.0)] * len(chunk), independent=True)
        return out
    resized = [resize_for_test(view, scale) for view in views]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (image, _) in enumerate(resized):
        groups.setdefault(tuple(image.shape[-2:]), []).append(i)
    found: list[Optional[dict[str, Any]]] = [None] * len(views)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            dets = detector.detect_resized(
                [resized[i][0] for i in chunk], [resized[i][1] for i in chunk], independent=True
            )
            for i, det in zip(chunk, dets):
                found[i] = det
    return found  # type: ignore[return-value]


def predict_one(wrapper: Any, detector: Detector, image: Any, score_thr: ScoreThr = 0.0) -> dict[str, Any]:
    """One image (a path, PIL image, array, tensor) through ``wrapper`` (a detector over originals
    wrapping ``detector``) -> ``boxes`` (k, 4) in its pixels, ``scores``, ``labels``,
    ``categories``, as ``models.detector.predict``. A PyTorch ``detector`` is in eval mode meanwhile."""
    thr = resolve_score_thr(detector, score_thr)
    training = bool(getattr(detector, "training", False))
    if training:
        detector.eval()  # type: ignore[attr-defined]
    try:
        with torch.no_grad():
            det = wrapper.detect_resized([to_image_tensor(image)], [(1.0, 1.0)])[0]
    finally:
        if training:
            detector.train(True)  # type: ignore[attr-defined]
    out: dict[str, Any] = keep_scores(det, thr)
    out["categories"] = [detector.class_names[i] for i in out["labels"].tolist()]
    return out


class OriginalsDetector:
    """A ``Detector`` over original images: ``test_scale`` None tells the loop not to resize, and
    each image's own views (tiles, augmentations) go through the wrapped ``detector``. Subclasses
    give ``detect_original``."""

    test_scale = None
    size_divisor = 1

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.class_names = detector.class_names
        self.score_thresholds = getattr(detector, "score_thresholds", None)

    def detect_resized(
        self, images: list[Tensor], scale_factors: list[tuple[float, float]], *, independent: bool = False
    ) -> list[dict[str, Tensor]]:
        """Original (3, H, W) uint8 images (``scale_factors`` all (1, 1)) -> per image the merged
        detections, ``boxes`` (k, 4) xyxy in its pixels, ``scores`` (k,), ``labels`` (k,). Each
        image is detected on its own, so the answers are always ``independent``."""
        if any(tuple(f) != (1.0, 1.0) for f in scale_factors):
            raise ValueError(
                f"`scale_factors` must be (1, 1): {type(self).__name__} takes original images (its test_scale is None)"
            )
        return [self.detect_original(image) for image in images]

    def detect_original(self, image: Tensor) -> dict[str, Tensor]:
        """One original (3, H, W) uint8 image -> its merged detections (CPU tensors)."""
        raise NotImplementedError
