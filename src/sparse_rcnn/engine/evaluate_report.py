"""Evaluate, analyse, choose the score thresholds and (optionally) write the report and store the
thresholds in the checkpoint: everything ``sparse-rcnn eval`` does, callable from Python."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..checkpoints import check_thresholds_target, store_score_thresholds
from ..evaluation import Analysis, analyse, cocoeval_metrics, detect_dataset, run_cocoeval
from ..visualize import write_report

log = logging.getLogger(__name__)


def analyse_results(
    dataset,
    results: list[dict],
    *,
    cat_ids: Optional[Sequence[int]] = None,
    class_names: Optional[Sequence[str]] = None,
    report_dir: Union[str, Path, None] = None,
    save_thresholds: Union[str, Path, None] = None,
    info: Optional[dict[str, Any]] = None,
    worst: int = 12,
) -> tuple[dict[str, float], Optional[Analysis]]:
    """Score COCO ``results`` on ``dataset`` (a ``CocoDetection``, train=False) once with COCOeval and
    analyse it -> (metrics with per-class AP, ``Analysis`` or None when there are no results).

    cat_ids: category id of each model label (default: the dataset's); class_names: the model's.
    report_dir: write the report there (``visualize.write_report``). save_thresholds: a checkpoint
    file (our format) to store the chosen thresholds in (``checkpoints.store_score_thresholds``).
    """
    cat_ids = list(dataset.cat_ids if cat_ids is None else cat_ids)
    coco_eval = run_cocoeval(dataset.coco, results, image_ids=dataset.image_ids, cat_ids=cat_ids)
    metrics = cocoeval_metrics(coco_eval, classwise=True)
    if coco_eval is None:
        if save_thresholds:
            log.warning("no detections: no score thresholds stored in %s", save_thresholds)
        return metrics, None
    source = f"F1-optimal at IoU 0.5 on {getattr(dataset, 'ann_file', 'the evaluation set')} ({len(dataset)} images)"
    result = analyse(coco_eval, class_names=class_names, source=source)
    if report_dir is not None:
        write_report(result, dataset, report_dir, worst=worst, info=info)
    if save_thresholds:
        if result.thresholds is None:
            log.warning("no threshold gives a true positive: none stored in %s", save_thresholds)
        else:
            store_score_thresholds(save_thresholds, result.thresholds)
            log.info("stored score thresholds in %s (global %.3f)", save_thresholds, result.thresholds["global"])
    return metrics, result


def evaluate_with_report(
    model,
    dataset,
    *,
    cat_ids: Optional[Sequence[int]] = None,
    batch_size: int = 1,
    device: Any = None,
    workers: int = 0,
    progress: bool = True,
    report_dir: Union[str, Path, None] = None,
    save_thresholds: Union[str, Path, None] = None,
    info: Optional[dict[str, Any]] = None,
    worst: int = 12,
) -> tuple[dict[str, float], list[dict], Optional[Analysis]]:
    """``evaluate`` plus ``analyse_results``: (metrics, COCO results, ``Analysis`` or None). A
    ``save_thresholds`` file that cannot take them fails before the detections are computed; the
    model carries the chosen thresholds afterwards (``model.score_thresholds``)."""
    if save_thresholds:
        check_thresholds_target(save_thresholds)
    results = detect_dataset(
        model, dataset, batch_size=batch_size, device=device, workers=workers, progress=progress, cat_ids=cat_ids
    )
    metrics, result = analyse_results(
        dataset,
        results,
        cat_ids=cat_ids,
        class_names=getattr(model, "class_names", None),
        report_dir=report_dir,
        save_thresholds=save_thresholds,
        info=info,
        worst=worst,
    )
    if save_thresholds and result is not None and result.thresholds is not None:
        getattr(model, "module", model).score_thresholds = result.thresholds
    return metrics, results, result
