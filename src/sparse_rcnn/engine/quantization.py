"""``sparse-rcnn quantize`` as a library call: calibration images and the accuracy guard's metric
around ``deploy.quantize_onnx``.

Calibration images go through ``predict``'s own pre-processing (``inference.prepare``: the test-time
resize; ``GraphDetector.batch``: normalise and pad), so the int8 ranges are those of the inputs the
graph will see. The guard's metric is our COCO box AP (``evaluation.coco_evaluate``) of the graph
on validation images, run through the one inference loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from ..data import DataError
from ..deploy import GraphDetector, load_detector
from ..deploy.quantize import Quantization, QuantizeError, quantize_onnx
from ..evaluation import coco_evaluate, detections_to_coco
from ..inference import DatasetImages, ImageFiles, iter_predictions

log = logging.getLogger(__name__)


def calibration_inputs(
    detector: GraphDetector, source: torch.utils.data.Dataset, num_images: int, *, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """Graph inputs of ``num_images`` images drawn at random (``seed``) from ``source`` (an
    ``inference`` source: ``ImageFiles`` or ``DatasetImages``), one image each, pre-processed as
    ``predict`` does. Images that cannot be read are skipped with a warning."""
    size = len(source)  # type: ignore[arg-type]
    chosen = np.sort(np.random.default_rng(seed).permutation(size)[: min(num_images, size)])
    inputs = []
    for i in chosen.tolist():
        item = source[i]
        if item.error is not None:
            log.warning("calibration: skipped %s", item.error)
            continue
        images, image_sizes = detector.batch([item.resized.numpy()])
        inputs.append({"images": images, "image_sizes": image_sizes})
    return inputs


def box_ap_metric(dataset: Any, cat_ids: Sequence[int]):
    """``metric(detector, indices)``: the COCO box AP of ``detector`` on those images of ``dataset``
    (a ``data.CocoDetection`` built with ``train=False``)."""

    def metric(detector: GraphDetector, indices: Sequence[int]) -> float:
        subset = torch.utils.data.Subset(dataset, list(indices))
        results: list[dict] = []
        for pred in iter_predictions(detector, DatasetImages(subset, detector.test_scale)):
            if pred.error is not None:
                raise DataError(pred.error)
            assert pred.detections is not None
            results += detections_to_coco(pred.key, pred.detections, cat_ids)
        image_ids = [dataset.image_ids[i] for i in indices]
        return coco_evaluate(dataset.coco, results, image_ids=image_ids, cat_ids=cat_ids)["bbox_mAP"]

    return metric


def check_same_classes(model_classes: Sequence[str], dataset: Any) -> list[int]:
    """COCO category id of each model class in ``dataset``; ``DataError`` unless the validation set
    has exactly the model's classes (an AP over other classes would guard nothing)."""
    by_name = {str(name).casefold(): cat_id for cat_id, name in zip(dataset.cat_ids, dataset.class_names)}
    missing = [n for n in model_classes if n.casefold() not in by_name]
    extra = sorted(set(by_name) - {n.casefold() for n in model_classes})
    if missing or extra:
        raise DataError(
            f"{dataset.ann_file}: its classes are not the model's (model lacks: {', '.join(extra) or '-'}; "
            f"set lacks: {', '.join(missing) or '-'}); validate on a split of the model's own dataset"
        )
    return [by_name[n.casefold()] for n in model_classes]


def _calibration(
    onnx_path: Union[str, Path],
    calibration: Optional[Any],
    images: Optional[Sequence[Union[str, Path]]],
    num_images: int,
) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """The calibration inputs and the graph's class names. The fp32 graph is opened here only for its
    pre-processing and metadata, and closed on return, before NNCF loads its own copy (an R-50 session
    is a few hundred MB more at NNCF's peak)."""
    detector = load_detector(onnx_path, runtime="onnxruntime")
    if images is not None:
        source: torch.utils.data.Dataset = ImageFiles([str(p) for p in images], detector.test_scale)
    else:
        source = DatasetImages(calibration, detector.test_scale)
    available = len(source)  # type: ignore[arg-type]
    if available < num_images:
        log.warning("calibration: %d images available, fewer than the %d asked for", available, num_images)
    return calibration_inputs(detector, source, num_images), detector.class_names


def quantize_model_file(
    onnx_path: Union[str, Path],
    output: Union[str, Path],
    *,
    calibration: Optional[Any] = None,
    images: Optional[Sequence[Union[str, Path]]] = None,
    num_images: int = 300,
    validation: Optional[Any] = None,
    max_ap_drop: float = 0.01,
    scope: str = "backbone",
    runtime: str = "onnxruntime",
) -> Quantization:
    """Quantize the exported ``onnx_path`` to INT8 at ``output``.

    calibration: a dataset (``data.CocoDetection``, ``train=False``, e.g. a train split), or
        ``images``: image files; ``num_images`` of them are drawn.
    validation: a dataset with the model's classes; with it, the accuracy guard (``max_ap_drop``,
        absolute box AP) on all its images, graphs run on ``runtime``.
    """
    if (calibration is None) == (images is None):
        raise ValueError("pass `calibration` (a dataset) or `images`, one of them")
    inputs, class_names = _calibration(onnx_path, calibration, images, num_images)
    if validation is None:
        return quantize_onnx(onnx_path, output, inputs, scope=scope)
    cat_ids = check_same_classes(class_names, validation)
    if len(validation) == 0:
        raise QuantizeError(f"{validation.ann_file}: no validation images")
    return quantize_onnx(
        onnx_path,
        output,
        inputs,
        scope=scope,
        validation=list(range(len(validation))),
        metric=box_ap_metric(validation, cat_ids),
        max_ap_drop=max_ap_drop,
        runtime=runtime,
    )
