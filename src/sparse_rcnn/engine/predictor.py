"""Prediction: in memory on user inputs (``predict``), or streamed over files and folders
(``iter_predictions``, what ``sparse-rcnn predict`` runs), by any ``Detector``.

Each image is decoded to (3, H, W) uint8 RGB and resized to the detector's test scale
(``data.resize``); the detector maps its boxes back to the image's own pixels. Detections below
``score_thr`` are dropped (``score >= score_thr`` is kept, everywhere); ``score_thr="auto"`` is
the per-class thresholds the detector carries (``score_thresholds``, chosen on an evaluation set).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..data.images import ImageError, expand_image_paths, to_image_tensor
from ..data.resize import resize_for_test

log = logging.getLogger(__name__)
ScoreThr = Union[float, str, Sequence[float]]  # a number, "auto", or one per class


class Detector(Protocol):
    """What prediction needs of a detector.

    ``SparseRCNN``, ``deploy.OnnxDetector`` and ``deploy.OpenVINODetector`` are each one."""

    class_names: list[str]
    test_scale: tuple[int, int]

    def detect_resized(self, images: list[Tensor], scale_factors: list[tuple[float, float]]) -> list[dict[str, Any]]:
        """(3, H_i, W_i) uint8 images already resized to ``test_scale``, each with its (sx, sy) ->
        per image ``boxes`` (k, 4) xyxy in original pixels, ``scores`` (k,), ``labels`` (k,)
        (tensors or arrays)."""
        ...


@dataclass
class Prediction:
    """One input's outcome: ``detections`` (CPU tensors ``boxes`` (k, 4), ``scores``, ``labels``,
    sorted by score) or the ``error`` that stopped it; ``image`` is the decoded original
    (3, H, W) uint8 when asked for (to draw on)."""

    index: int
    path: str
    width: int = 0
    height: int = 0
    detections: Optional[dict[str, Tensor]] = None
    error: Optional[str] = None
    image: Optional[Tensor] = None


def keep_scores(det: dict[str, Any], score_thr: Union[float, Sequence[float]]) -> dict[str, Tensor]:
    """Detections as CPU tensors, those with ``score >= score_thr`` only (a number, or one per class)."""
    det = {k: torch.as_tensor(v).cpu() for k, v in det.items()}
    if isinstance(score_thr, (int, float)):
        keep = det["scores"] >= score_thr
    else:
        keep = det["scores"] >= torch.as_tensor(score_thr, dtype=det["scores"].dtype)[det["labels"].long()]
    return {k: v[keep] for k, v in det.items()}


def resolve_score_thr(detector, score_thr: ScoreThr) -> Union[float, list[float]]:
    """``score_thr`` as ``keep_scores`` takes it: "auto" becomes the detector's stored per-class
    thresholds (logged); raises ``CheckpointError`` when it has none."""
    if not isinstance(score_thr, str):
        return score_thr if isinstance(score_thr, (int, float)) else [float(t) for t in score_thr]
    if score_thr != "auto":
        raise ValueError(f"score_thr must be a number or 'auto', got {score_thr!r}")
    from ..checkpoints.files import CheckpointError
    from ..evaluation.thresholds import thresholds_per_label

    stored = getattr(detector, "score_thresholds", None)
    if not stored:
        raise CheckpointError(
            "`score_thr=auto` needs score thresholds chosen on an evaluation set and this model has none: "
            "choose and store them with `save_thresholds`, or give a number as `score_thr`"
        )
    values = thresholds_per_label(stored, list(detector.class_names))
    where = f" ({stored['source']})" if stored.get("source") else ""
    if len(values) <= 12:
        log.info(
            "score thresholds%s: %s", where, ", ".join(f"{n} >= {t:.3f}" for n, t in zip(detector.class_names, values))
        )
    else:
        log.info(
            "score thresholds%s: per class %.3f-%.3f (global %.3f); -v lists them",
            where,
            min(values),
            max(values),
            stored["global"],
        )
        log.debug("score thresholds: %s", ", ".join(f"{n} >= {t:.3f}" for n, t in zip(detector.class_names, values)))
    return values


@torch.no_grad()
def predict(model, inputs: Any, *, batch_size: int = 1, score_thr: ScoreThr = 0.0) -> list[dict[str, Any]]:
    """Run ``model`` (eval mode) on one input or a list of them (paths, PIL images, arrays, tensors).
    Returns per input a dict with ``boxes`` (k, 4) float tensor in its pixels, ``scores``,
    ``labels``, ``categories``."""
    score_thr = resolve_score_thr(model, score_thr)
    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    was_training = model.training
    model.eval()
    results = []
    try:
        for start in range(0, len(items), batch_size):
            images = [to_image_tensor(x) for x in items[start : start + batch_size]]
            for out in model(images):
                out = keep_scores(out, score_thr)
                out["categories"] = [model.class_names[i] for i in out["labels"].tolist()]
                results.append(out)
    finally:
        model.train(was_training)
    return results[0] if single else results


def iter_predictions(
    detector: Detector,
    inputs: Sequence[str],
    *,
    batch_size: int = 1,
    workers: int = 0,
    score_thr: ScoreThr = 0.0,
    keep_images: bool = False,
) -> Iterator[Prediction]:
    """Predict every image of ``inputs`` (files, and folders: their images), in input order.

    Images are decoded and resized in ``workers`` background processes while the detector runs,
    and nothing is kept once yielded, so memory stays flat over any number of images. An image
    that cannot be read is yielded with its ``error``; the others go on.
    """
    score_thr = resolve_score_thr(detector, score_thr)
    paths = expand_image_paths(inputs)
    loader = torch.utils.data.DataLoader(
        _ResizedImages(paths, detector.test_scale),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=2 if workers else None,
    )
    for batch in loader:
        ok = [item for item in batch if item[2] is not None]
        dets = detector.detect_resized([item[3] for item in ok], [item[4] for item in ok]) if ok else []
        found = dict(zip((item[0] for item in ok), dets))
        for index, path, original, _, _, error in batch:
            if error is not None:
                yield Prediction(index, path, error=error)
                continue
            h, w = original.shape[-2:]
            yield Prediction(
                index,
                path,
                int(w),
                int(h),
                keep_scores(found[index], score_thr),
                image=original if keep_images else None,
            )


def to_record(image: str, width: int, height: int, det: dict[str, Any], class_names: Sequence[str]) -> dict:
    """One entry of predict's output: boxes in image pixels, sorted by score."""
    order = torch.argsort(det["scores"], descending=True, stable=True)
    return {
        "image": image,
        "width": int(width),
        "height": int(height),
        "detections": [
            {
                "box": [float(v) for v in det["boxes"][i].tolist()],
                "score": float(det["scores"][i]),
                "label": int(det["labels"][i]),
                "category": class_names[int(det["labels"][i])],
            }
            for i in order.tolist()
        ],
    }


class _ResizedImages(torch.utils.data.Dataset):
    """Item i: (i, path, original, resized, scale factor, None), or (i, path, None, None, None,
    error message) for an image that cannot be read; a failure is returned, not raised."""

    def __init__(self, paths: Sequence[str], test_scale: tuple[int, int]) -> None:
        # One numpy bytes array, not a list of str: forked workers reading a list touch each
        # object's refcount and so copy its memory page by page (RSS grows with every image).
        self.paths = np.array([os.fsencode(p) for p in paths], dtype=bytes)
        self.test_scale = tuple(test_scale)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = os.fsdecode(self.paths[i])
        try:
            original = to_image_tensor(path)
        except ImageError as e:
            message = str(e)
            return i, path, None, None, None, message if message.startswith(path) else f"{path}: {message}"
        resized, factor = resize_for_test(original, self.test_scale)
        return i, path, original, resized, factor, None
