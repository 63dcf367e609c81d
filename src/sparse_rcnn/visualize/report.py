"""The evaluation report: a folder with ``metrics.json``, the plots, the worst images and
``index.html`` showing all of it (``sparse-rcnn eval --report DIR``, and ``demo``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from ..evaluation.analysis import Analysis, confusion_json
from ..evaluation.errors import worst_images
from .draw import class_color
from .gallery import save_gallery
from .html import figure, swatch, table, write_page
from .plots import plot_class_ap, plot_confusion, plot_f1, plot_pr_curves, plot_pr_per_class

log = logging.getLogger(__name__)

FILES = (
    "metrics.json",
    "confusion_matrix.json",
    "per_class_ap.png",
    "pr_curves.png",
    "pr_per_class.png",
    "confusion_counts.png",
    "confusion_normalised.png",
    "f1_threshold.png",
    "worst_images.png",
    "index.html",
)


def write_report(
    result: Analysis, dataset, out_dir: str | Path, *, worst: int = 12, info: Optional[dict[str, Any]] = None
) -> Path:
    """Write the report of ``result`` (``evaluation.analyse``) on ``dataset`` (the evaluated
    ``CocoDetection``, train=False: the gallery draws its images) into ``out_dir``; returns
    ``out_dir/index.html``. ``info``: extra entries for metrics.json (model, weights, ...)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {**result.summary(), **(info or {})}
    (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    confusion = confusion_json(result.confusion, result.class_names, result.applied_thresholds())
    (out / "confusion_matrix.json").write_text(json.dumps(confusion, indent=1) + "\n")
    plot_class_ap(result, out / "per_class_ap.png")
    plot_pr_curves(result, out / "pr_curves.png")
    plot_pr_per_class(result, out / "pr_per_class.png")
    plot_confusion(result.confusion, result.class_names, out / "confusion_counts.png", normalised=False)
    plot_confusion(result.confusion, result.class_names, out / "confusion_normalised.png", normalised=True)
    plot_f1(result, out / "f1_threshold.png")
    worst_list = worst_images(result.images, worst)
    save_gallery(worst_list, result.matches, dataset, out / "worst_images.png")
    page = write_page(
        out / "index.html",
        "Sparse R-CNN evaluation report",
        _sections(result, summary, len(worst_list)),
        intro=_intro(result, info),
    )
    log.info("wrote the report to %s", page)
    return page


def _intro(result: Analysis, info: Optional[dict]) -> str:
    bits = [
        f"{len(result.matches.image_ids)} images, {int(result.num_gt.sum())} ground-truth boxes, "
        f"{len(result.matches.det_score)} detections, {result.num_classes} classes."
    ]
    for key in ("model", "weights", "ann"):
        if info and info.get(key):
            bits.append(f"{key}: {info[key]}.")
    return " ".join(bits)


def _sections(result: Analysis, summary: dict, num_worst: int) -> list[tuple[str, str]]:
    keys = (
        "bbox_mAP",
        "bbox_mAP_50",
        "bbox_mAP_75",
        "bbox_mAP_s",
        "bbox_mAP_m",
        "bbox_mAP_l",
        "bbox_AR_100",
        "bbox_AR_300",
        "bbox_AR_1000",
    )
    metrics = table(["metric", "value"], [(k, f"{summary[k]:.4f}") for k in keys if k in summary])
    thr = result.thresholds
    rows = []
    for k, row in enumerate(summary["per_class"]):
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        f1 = thr["per_class_f1"][k] if thr else None
        rows.append(
            (
                swatch(class_color(k), row["class"]),
                row["num_gt"],
                fmt(row["ap"]),
                fmt(row["ap_50"]),
                fmt(row["ap_75"]),
                fmt(row["score_thr"]),
                fmt(f1),
            )
        )
    classes = table(
        ["class", "ground truth", "AP", "AP50", "AP75", "chosen threshold", "F1 there"], rows, raw_first=True
    )
    if thr:
        chosen = (
            f"<p>Global threshold <b>{thr['global']:.3f}</b> (F1 {thr['f1']:.3f}, precision {thr['precision']:.3f}, "
            f"recall {thr['recall']:.3f} at IoU {thr['iou']}); per class in the table"
            + (
                f"; classes given the global one (F1 0 on their own): {', '.join(thr['fallback'])}"
                if thr["fallback"]
                else ""
            )
            + ". Stored in a checkpoint with <code>sparse-rcnn eval --save-thresholds</code>, used by "
            "<code>predict --score-thr auto</code>.</p>"
        )
    else:
        chosen = "<p>No threshold gives any true positive: none was chosen.</p>"
    return [
        ("Metrics (COCO box AP, 0-1)", metrics),
        ("Per class", classes + figure("per_class_ap.png", "AP per class")),
        (
            "Precision-recall curves",
            figure(
                "pr_curves.png",
                "precision-recall curves at IoU 0.5 and 0.75",
                "From COCOeval's own precision array (101 recall points, up to 1000 detections "
                "per image); the black curve is the mean over classes.",
            )
            + figure("pr_per_class.png", "precision-recall per class"),
        ),
        ("Score threshold", chosen + figure("f1_threshold.png", "F1 against the score threshold")),
        (
            "Confusion matrix",
            figure(
                "confusion_counts.png",
                "confusion matrix, counts",
                "Rows: true class; columns: predicted class. A detection kept at its class's threshold "
                "that matches nothing is a false alarm (background row); a ground-truth box nothing "
                "matches is a miss (background column). Crowd boxes are ignored. Also in "
                "confusion_matrix.json.",
            )
            + figure("confusion_normalised.png", "confusion matrix, row-normalised"),
        ),
        (
            f"Worst {num_worst} images",
            figure(
                "worst_images.png",
                "worst images",
                "Most missed plus false boxes at the chosen thresholds; a wrong class counts as both.",
            ),
        ),
    ]
