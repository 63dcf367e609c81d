"""What every runtime's detector offers (the ``Detector`` protocol) and the shaping of its results:
score thresholds (a number, one per class, or the stored ``"auto"`` ones), the JSON record of one
image, and in-memory prediction on user inputs.

Detections below ``score_thr`` are dropped (``score >= score_thr`` is kept, everywhere);
``score_thr="auto"`` is the per-class thresholds the detector carries (``score_thresholds``,
chosen on an evaluation set by ``evaluation.choose_thresholds``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, Sequence, Union

import torch
from torch import Tensor

from ..checkpoints import CheckpointError
from ..data.images import to_image_tensor
from ..data.resize import resize_for_test

log = logging.getLogger(__name__)
ScoreThr = Union[float, str, Sequence[float]]  # a number, "auto", or one per class


class Detector(Protocol):
    """What prediction needs of a detector.

    ``SparseRCNN``, ``deploy.OnnxDetector`` and ``deploy.OpenVINODetector`` are each one."""

    class_names: list[str]
    test_scale: tuple[int, int]

    @property
    def size_divisor(self) -> int:
        """Padded inputs are a multiple of it (images of one padded shape batch exactly)."""
        ...

    def detect_resized(
        self, images: list[Tensor], scale_factors: list[tuple[float, float]], *, independent: bool = False
    ) -> list[dict[str, Any]]:
        """(3, H_i, W_i) uint8 images already resized to ``test_scale``, each with its (sx, sy) ->
        per image ``boxes`` (k, 4) xyxy in original pixels, ``scores`` (k,), ``labels`` (k,)
        (tensors or arrays). ``independent``: each answer bit-identical to the image's alone, as
        the runtime can make it; otherwise the batch may share work (MMDetection's padded batch)."""
        ...


class EagerDetector(Detector, Protocol):
    """A ``Detector`` that is a ``torch.nn.Module`` (``SparseRCNN``): what ``predict`` needs of it."""

    training: bool

    def __call__(self, images: list[Tensor]) -> Any: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


def keep_scores(det: dict[str, Any], score_thr: Union[float, Sequence[float]]) -> dict[str, Tensor]:
    """Detections as CPU tensors, those with ``score >= score_thr`` only (a number, or one per class)."""
    det = {k: torch.as_tensor(v).cpu() for k, v in det.items()}
    if isinstance(score_thr, (int, float)):
        keep = det["scores"] >= score_thr
    else:
        keep = det["scores"] >= torch.as_tensor(score_thr, dtype=det["scores"].dtype)[det["labels"].long()]
    return {k: v[keep] for k, v in det.items()}


def thresholds_per_label(thresholds: dict[str, Any], class_names: Sequence[str]) -> list[float]:
    """Stored ``choose_thresholds`` output -> one threshold per label of ``class_names``: by name,
    the global threshold for a class not in it."""
    by_name = dict(zip(thresholds.get("class_names", []), thresholds.get("per_class", [])))
    return [float(by_name.get(name, thresholds["global"])) for name in class_names]


def resolve_score_thr(detector: Detector, score_thr: ScoreThr) -> Union[float, list[float]]:
    """``score_thr`` as ``keep_scores`` takes it: "auto" becomes the detector's stored per-class
    thresholds (logged); raises ``CheckpointError`` when it has none."""
    if not isinstance(score_thr, str):
        return score_thr if isinstance(score_thr, (int, float)) else [float(t) for t in score_thr]
    if score_thr != "auto":
        raise ValueError(f"score_thr must be a number or 'auto', got {score_thr!r}")
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


def to_record(image: str, width: int, height: int, det: dict[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    """One entry of predict's output: boxes in image pixels, sorted by score."""
    order = torch.argsort(torch.as_tensor(det["scores"]), descending=True, stable=True).tolist()
    # Whole tensors to Python lists once (the same numbers): indexing a tensor per detection cost
    # more than the detections' JSON for a video's small frames.
    boxes, scores, labels = (torch.as_tensor(det[k]).tolist() for k in ("boxes", "scores", "labels"))
    return {
        "image": image,
        "width": int(width),
        "height": int(height),
        "detections": [
            {
                "box": [float(v) for v in boxes[i]],
                "score": float(scores[i]),
                "label": int(labels[i]),
                "category": class_names[int(labels[i])],
            }
            for i in order
        ],
    }


@torch.no_grad()
def predict(
    model: EagerDetector, inputs: Any, *, batch_size: int = 1, score_thr: ScoreThr = 0.0
) -> Union[dict[str, Any], list[dict[str, Any]]]:
    """Run ``model`` (eval mode) on one input or a list of them (paths, PIL images, arrays, tensors).
    Returns per input a dict with ``boxes`` (k, 4) float tensor in its pixels, ``scores``,
    ``labels``, ``categories``; each bit-identical to the input's alone, whatever ``batch_size``."""
    score_thr = resolve_score_thr(model, score_thr)
    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    was_training = model.training
    model.eval()
    results: list[dict[str, Any]] = []
    try:
        for start in range(0, len(items), batch_size):
            resized, factors = zip(
                *(resize_for_test(to_image_tensor(x), model.test_scale) for x in items[start : start + batch_size])
            )
            for out in model.detect_resized(list(resized), list(factors), independent=True):
                kept: dict[str, Any] = keep_scores(out, score_thr)
                kept["categories"] = [model.class_names[i] for i in kept["labels"].tolist()]
                results.append(kept)
    finally:
        model.train(was_training)
    return results[0] if single else results
