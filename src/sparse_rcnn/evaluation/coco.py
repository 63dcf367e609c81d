"""COCO box AP (paper Sec. 4, Table 1-4 metric) with pycocotools' COCOeval, as MMDetection's CocoMetric.

``evaluate`` runs a model over a ``CocoDetection`` (original images; each is resized to the
model's test scale on the CPU with OpenCV, exactly as ``sparse-rcnn predict``), converts the
detections to COCO results (``[x, y, w, h]`` with w = x2 - x1, category id of the label) and
scores them. Under ``torch.distributed`` every rank runs a strided shard of the images and the
results are gathered to all ranks before scoring.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..checkpoints.zoo import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
from ..common import Processes, all_gather_lists
from ..data.coco import CocoDetection
from ..data.validation import DataError
from ..inference import DatasetImages, iter_predictions
from ..models import SparseRCNN
from .categories import match_categories

log = logging.getLogger(__name__)

# MMDetection's CocoMetric sets maxDets to 100 / 300 / 1000 detections per image (pycocotools' default
# is 1 / 10 / 100). pycocotools' summarize then takes bbox_mAP at 100 (its hard-wired default) and
# mAP_50/75/s/m/l at 1000, which matters for the 300-proposal models; we keep that exactly.
MAX_DETS = (100, 300, 1000)
# Our key -> index in COCOeval.stats (MMDetection's names, without its "coco/" prefix).
METRICS = {
    "bbox_mAP": 0,
    "bbox_mAP_50": 1,
    "bbox_mAP_75": 2,
    "bbox_mAP_s": 3,
    "bbox_mAP_m": 4,
    "bbox_mAP_l": 5,
    "bbox_AR_100": 6,
    "bbox_AR_300": 7,
    "bbox_AR_1000": 8,
    "bbox_AR_s": 9,
    "bbox_AR_m": 10,
    "bbox_AR_l": 11,
}


def run_cocoeval(
    coco_gt, results: list[dict], *, image_ids: Optional[Sequence[int]] = None, cat_ids: Optional[Sequence[int]] = None
):
    """pycocotools' ``COCOeval`` of ``results`` against ``coco_gt`` after ``evaluate``,
    ``accumulate`` and ``summarize`` (prints silenced), with MMDetection's ``MAX_DETS``; None when
    there are no results. Its ``eval["precision"]`` (IoU, recall, category, area, max dets) and
    ``evalImgs`` (the per-image matches) are what the report reads."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return None
    with contextlib.redirect_stdout(io.StringIO()) as text:
        coco_dt = coco_gt.loadRes(results)
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.params.maxDets = list(MAX_DETS)
        if image_ids is not None:
            coco_eval.params.imgIds = list(image_ids)
        if cat_ids is not None:
            coco_eval.params.catIds = list(cat_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    log.debug("COCOeval:\n%s", text.getvalue())
    return coco_eval


def cocoeval_metrics(coco_eval, *, classwise: bool = False) -> dict[str, float]:
    """The metrics of a ``run_cocoeval`` result (None: every metric 0), as ``coco_evaluate``."""
    if coco_eval is None:
        log.warning("no detections to evaluate; every metric is 0")
        return {k: 0.0 for k in METRICS}
    metrics = {k: float(coco_eval.stats[i]) for k, i in METRICS.items()}
    if classwise:
        precision = coco_eval.eval["precision"]  # (iou, recall, category, area, max dets)
        for k, cat_id in enumerate(coco_eval.params.catIds):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            name = coco_eval.cocoGt.cats[cat_id].get("name", cat_id)
            metrics[f"bbox_AP_{name}"] = float(p.mean()) if p.size else -1.0
    return metrics


def coco_evaluate(
    coco_gt,
    results: list[dict],
    *,
    image_ids: Optional[Sequence[int]] = None,
    cat_ids: Optional[Sequence[int]] = None,
    classwise: bool = False,
) -> dict[str, float]:
    """COCO bbox metrics of ``results`` ([{"image_id", "category_id", "bbox": [x, y, w, h], "score"}])
    against the pycocotools ``coco_gt``, on a 0-1 scale: ``bbox_mAP`` (AP@[.5:.95]), ``bbox_mAP_50``,
    ``bbox_mAP_75``, ``bbox_mAP_s/m/l``, and the recalls ``bbox_AR_100/300/1000/s/m/l`` (s/m/l at
    1000), all with MMDetection's ``MAX_DETS``.

    image_ids / cat_ids: the images / categories evaluated (default: all of ``coco_gt``; MMDetection
    evaluates the categories of the model's classes). classwise: also
    ``bbox_AP_<category name>`` per category (-1 where it has no ground truth).
    No results at all scores 0 everywhere. pycocotools' prints are silenced.
    """
    coco_eval = run_cocoeval(coco_gt, results, image_ids=image_ids, cat_ids=cat_ids)
    return cocoeval_metrics(coco_eval, classwise=classwise)


def coco_category_ids(
    class_names: Sequence[str], ann_file: Optional[str] = None
) -> tuple[list[int], Optional[dict[str, int]]]:
    """COCO category id of each label, and image id by file name (and by base name) from
    ``ann_file``. Without a file: COCO's 80 ids for COCO's classes, else 1..C, and no image ids."""
    if not ann_file:
        if list(class_names) == list(COCO_CLASS_NAMES):
            return list(COCO_CATEGORY_IDS), None
        return list(range(1, len(class_names) + 1)), None
    try:
        with open(ann_file) as f:
            ann = json.load(f)
        categories = sorted(ann["categories"], key=lambda c: c["id"])
        image_ids = {str(im["file_name"]): int(im["id"]) for im in ann["images"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{ann_file}: not a readable COCO annotation file ({type(e).__name__}: {e})") from None
    cat_ids = match_categories(class_names, [(c["id"], c.get("name", c["id"])) for c in categories], ann_file)
    for name, image_id in list(image_ids.items()):  # images given with a folder prefix are found too
        image_ids.setdefault(Path(name).name, image_id)
    return cat_ids, image_ids


def detections_to_coco(image_id: int, det: dict[str, Tensor], cat_ids: Sequence[int]) -> list[dict]:
    """One image's detections (``boxes`` (k, 4) xyxy in original pixels, ``scores``, ``labels``
    contiguous) -> COCO results entries."""
    boxes = det["boxes"].detach().float().cpu().numpy().astype(np.float64)
    scores = det["scores"].detach().float().cpu().tolist()
    labels = det["labels"].detach().cpu().tolist()
    out = []
    for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores, labels):
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(cat_ids[label]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
            }
        )
    return out


class EvaluationStopped(Exception):
    """``evaluate``'s ``stop`` asked it to stop before the end (e.g. SIGTERM during training)."""


def detect_dataset(
    model,
    dataset: CocoDetection,
    *,
    batch_size: int = 1,
    device: Any = None,
    workers: int = 0,
    progress: bool = True,
    cat_ids: Optional[Sequence[int]] = None,
    stop: Optional[Callable[[], bool]] = None,
    pad: str = "bucket",
) -> list[dict]:
    """Run ``model`` (eval mode; or any ``models.detector.Detector``, e.g. an exported graph on
    ``deploy.OpenVINODetector``) over ``dataset`` (built with ``train=False``) -> the COCO results
    of all images (under ``torch.distributed``: gathered from every rank), through the one
    inference loop (``inference.iter_predictions``). Arguments as ``evaluate``.
    ``stop``: asked before each batch; True raises ``EvaluationStopped`` (a signal handler's flag,
    so a stop takes one batch, not the whole pass)."""
    if dataset.transform is not None:
        raise ValueError("evaluate needs a dataset of original images: build it with train=False and no transform")
    cat_ids = list(dataset.cat_ids if cat_ids is None else cat_ids)
    net = getattr(model, "module", model)
    is_module = isinstance(net, torch.nn.Module)  # else another Detector, e.g. deploy.OpenVINODetector
    detector = _OnDevice(net, device) if is_module else net
    procs = Processes.current()

    def check_stop() -> None:
        if stop is not None and stop():
            raise EvaluationStopped

    was_training = is_module and net.training
    if is_module:
        net.eval()
    results: list[dict] = []
    try:
        for pred in iter_predictions(
            detector,
            DatasetImages(dataset, net.test_scale),
            batch_size=batch_size,
            workers=workers,
            pad=pad,
            processes=procs,
            stop=check_stop,
            progress=progress and procs.is_main,
            desc="eval",
        ):
            if pred.error is not None:
                raise DataError(pred.error)
            assert pred.detections is not None  # no error
            results += detections_to_coco(pred.key, pred.detections, cat_ids)
    finally:
        if is_module:
            net.train(was_training)
    return all_gather_lists(results, procs)


class _OnDevice:
    """A module detector whose resized images go to ``device`` first (default: its parameters')."""

    def __init__(self, net: SparseRCNN, device: Any) -> None:
        if device is None:
            param = next(net.parameters(), None)
            device = param.device if param is not None else "cpu"
        self.net, self.device = net, device
        self.class_names, self.test_scale, self.size_divisor = net.class_names, net.test_scale, net.size_divisor
        self.score_thresholds = None

    def detect_resized(
        self, images: list[Tensor], scale_factors: list[tuple[float, float]], *, independent: bool = False
    ) -> list[dict]:
        return self.net.detect_resized([img.to(self.device) for img in images], scale_factors, independent=independent)


@torch.no_grad()
def evaluate(
    model,
    dataset: CocoDetection,
    *,
    batch_size: int = 1,
    device: Any = None,
    workers: int = 0,
    progress: bool = True,
    classwise: bool = False,
    cat_ids: Optional[Sequence[int]] = None,
    stop: Optional[Callable[[], bool]] = None,
    pad: str = "bucket",
) -> tuple[dict[str, float], list[dict]]:
    """Run ``model`` (eval mode) over ``dataset`` (built with ``train=False``) and score it.

    Returns (metrics as ``coco_evaluate``, with per-category AP if ``classwise``; COCO results
    of all images). ``cat_ids``: COCO category id of each model label (default: the dataset's,
    ``dataset.cat_ids``); only those categories are scored. ``device``: where the images go
    (default: the model's). The model may be wrapped in DistributedDataParallel; its
    training/eval mode is restored afterwards. ``stop``: see ``detect_dataset``. ``pad``: as
    ``inference.iter_predictions`` (``"largest"``: MMDetection's batches, for parity checks).
    """
    cat_ids = list(dataset.cat_ids if cat_ids is None else cat_ids)
    results = detect_dataset(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        workers=workers,
        progress=progress,
        cat_ids=cat_ids,
        stop=stop,
        pad=pad,
    )
    metrics = coco_evaluate(dataset.coco, results, image_ids=dataset.image_ids, cat_ids=cat_ids, classwise=classwise)
    return metrics, results
