"""``sparse-rcnn eval``: COCO box AP (and VOC AP50) of a model on a COCO, YOLO or Pascal VOC dataset, the
report of what it gets wrong, and the score thresholds to deploy with."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..checkpoints import check_thresholds_target, store_score_thresholds
from ..common import atomic_write, check_output_dir, check_outputs, check_outside
from ..engine import evaluate_with_report
from ..evaluation import add_categories, match_categories, voc_evaluate
from .args import (
    UsageError,
    add_data_args,
    add_fast_mode_args,
    add_model_args,
    add_runtime_args,
    data_config,
    dataset_from_args,
    detector_from_args,
    device_arg,
    non_negative_int,
    positive_int,
    print_metrics,
)
from .views import add_view_args, views_from_args

log = logging.getLogger("sparse_rcnn")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="COCO box AP (and VOC AP50) of a model on a COCO, YOLO or Pascal VOC dataset")
    add_model_args(p)
    p.add_argument("--ann", help="COCO annotation JSON (or use --data)")
    p.add_argument("--images", help="folder holding the images named in the COCO json (default for --data: beside it)")
    add_data_args(p, split_help="YOLO / VOC split to evaluate on (default: val)")
    p.add_argument(
        "--metric",
        nargs="+",
        choices=("coco", "voc"),
        default=["coco"],
        help="coco: COCO box AP (default); voc: Pascal VOC AP50, 11-point and area, per class and mean",
    )
    p.add_argument("--output", help="write the metrics here as JSON")
    p.add_argument("--results", help="write the detections here (COCO results JSON)")
    p.add_argument(
        "--report",
        metavar="DIR",
        help="write the report here: metrics.json, PR curves, confusion matrix, "
        "F1 against the score threshold, the worst images, index.html",
    )
    p.add_argument(
        "--save-thresholds",
        action="store_true",
        help="store the F1-optimal score thresholds (global and per class) in the --weights checkpoint "
        "(for predict --score-thr auto and export)",
    )
    p.add_argument("--worst", type=positive_int, default=12, help="images in the report's gallery (default: 12)")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="image decoding processes")
    add_fast_mode_args(p)
    add_runtime_args(p)
    add_view_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data_cfg = data_config(args.set, "eval")
    weights = args.weights if args.weights and not args.weights.startswith(("http://", "https://")) else None
    check_outputs([args.output, args.results], [args.ann, args.data, weights, args.onnx])
    if args.onnx and args.save_thresholds:
        raise UsageError("--save-thresholds stores them in a --weights checkpoint: evaluate that with PyTorch")
    if args.save_thresholds:  # before the (long) evaluation
        check_thresholds_target(args.weights)
    dataset = dataset_from_args(args, data_cfg.bad_annotations, default_split="val", classes=data_cfg.classes)
    check_outside(args.report, dataset.image_folders())  # its pictures would become images of the split
    for folder in [Path(p).parent for p in (args.output, args.results) if p] + ([args.report] if args.report else []):
        check_output_dir(folder)  # before the (long) evaluation, not after it
    source = dataset.ann_file
    model = detector_from_args(args)  # after the data: its errors come first
    cat_ids = match_categories(model.class_names, list(zip(dataset.cat_ids, dataset.class_names)), source)
    add_categories(dataset.coco, cat_ids, model.class_names)  # the model's classes this split does not hold
    info = {
        "num_images": len(dataset),
        "model": model.config.name if not args.onnx else model.model_name,
        "weights": args.weights,
        "ann": source,
        "format": dataset.format,
        "dtype": args.dtype,
        "winograd": args.winograd,
        "compile": args.compile,
        **({"onnx": args.onnx, "runtime": model.runtime, "threads": args.threads} if args.onnx else {}),
    }
    if args.tile is not None or args.tta:
        info["views"] = {"tile": args.tile, "tta_scales": args.tta_scales if args.tta else None, "merge": args.merge}
    metrics, results, analysis = evaluate_with_report(
        views_from_args(model, args),
        dataset,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        cat_ids=cat_ids,
        progress=sys.stderr.isatty(),
        report_dir=args.report,
        info=info,
        worst=args.worst,
    )
    if "coco" not in args.metric:
        metrics = {}
    if "voc" in args.metric:
        metrics.update(voc_evaluate(dataset.coco, results, image_ids=dataset.image_ids, cat_ids=cat_ids))
    print_metrics(metrics)
    print(f"{len(dataset)} images, {len(results)} detections")
    thresholds = analysis.thresholds if analysis is not None else None
    if thresholds:
        print(
            f"F1-optimal score threshold at IoU 0.5: {thresholds['global']:.3f} (F1 {thresholds['f1']:.3f}); "
            "per class: "
            + ", ".join(f"{n} {t:.3f}" for n, t in list(zip(thresholds["class_names"], thresholds["per_class"]))[:12])
            + (" ..." if len(thresholds["per_class"]) > 12 else "")
        )
    if args.report:
        print(f"report: {Path(args.report) / 'index.html'}")
    if args.output:
        report = {**metrics, "num_detections": len(results), **info, "score_thresholds": thresholds}
        with atomic_write(args.output) as out:
            out.file.write(json.dumps(report, indent=2) + "\n")
        log.info("wrote %s", args.output)
    if args.results:
        with atomic_write(args.results) as out:
            out.file.write(json.dumps(results))
        log.info("wrote %s (%d detections, COCO results format)", args.results, len(results))
    if args.save_thresholds:  # last: the metrics are written whatever happens to the checkpoint
        if thresholds:
            store_score_thresholds(args.weights, thresholds)
            log.info("stored score thresholds in %s (global %.3f)", args.weights, thresholds["global"])
        else:
            log.warning("no score thresholds chosen: none stored in %s", args.weights)
    return 0
