"""``sparse-rcnn eval``: COCO box AP (and VOC AP50) of a model on a COCO, YOLO or Pascal VOC dataset."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ..checkpoints import load_model
from ..config import ConfigError
from ..data import CocoDetection
from ..data.sources import load_split
from ..evaluation import evaluate, match_categories, voc_evaluate
from .args import (
    UsageError, add_data_args, add_fast_mode_args, add_model_args, apply_fast_mode, data_config, device_arg,
    non_negative_int, positive_int, print_metrics,
)

log = logging.getLogger("sparse_rcnn")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="COCO box AP (and VOC AP50) of a model on a COCO, YOLO or Pascal VOC dataset")
    add_model_args(p)
    p.add_argument("--ann", help="COCO annotation JSON (or use --data)")
    p.add_argument("--images", help="folder holding the images named in the COCO json (default for --data: beside it)")
    add_data_args(p, split_help="YOLO / VOC split to evaluate on (default: val)")
    p.add_argument("--metric", nargs="+", choices=("coco", "voc"), default=["coco"],
                   help="coco: COCO box AP (default); voc: Pascal VOC AP50, 11-point and area, per class and mean")
    p.add_argument("--output", help="write the metrics here as JSON")
    p.add_argument("--results", help="write the detections here (COCO results JSON)")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="image decoding processes")
    add_fast_mode_args(p)
    p.set_defaults(func=run)


def _dataset(args: argparse.Namespace, bad_annotations: str) -> CocoDetection:
    """The evaluation set: --data (any format) or --ann/--images (COCO)."""
    if bool(args.data) == bool(args.ann):
        raise UsageError("name the evaluation data: --data PATH (COCO json, YOLO data.yaml or VOC folder), or --ann and --images")
    if args.ann:
        if not args.images:
            raise UsageError("--ann needs --images (the folder of its images)")
        if args.split or args.data_format:
            raise UsageError("--split and --data-format go with --data")
        return CocoDetection(args.ann, args.images, train=False, bad_annotations=bad_annotations)
    split = load_split(args.data, format=args.data_format, split=args.split or "val", images=args.images)
    if split.format == "coco" and args.split:
        raise UsageError("--split is for YOLO / VOC datasets; a COCO json is one split")
    return CocoDetection.from_split(split, train=False, bad_annotations=bad_annotations)


def _check_writable(paths: list[Path]) -> None:
    """Before the (long) evaluation, not after it."""
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
        if path.is_dir() or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise UsageError(f"cannot write {path}: it is a folder or not writable")


def run(args: argparse.Namespace) -> int:
    data_cfg = data_config(args.set, "eval")
    _check_writable([Path(p) for p in (args.output, args.results) if p])
    dataset = _dataset(args, data_cfg.bad_annotations)
    source = dataset.ann_file
    model = load_model(args.model, args.weights, device=args.device)  # after the data: its errors come first
    apply_fast_mode(model, args)
    cat_ids = match_categories(model.class_names, list(zip(dataset.cat_ids, dataset.class_names)), source)
    if cat_ids is None:
        raise ConfigError(
            f"{source} has {len(dataset.cat_ids)} categories but the model predicts {model.num_classes} classes; "
            "pick the matching --model/--weights"
        )
    metrics, results = evaluate(
        model, dataset, batch_size=args.batch_size, device=args.device, workers=args.workers, classwise=True,
        cat_ids=cat_ids, progress=sys.stderr.isatty(),
    )
    if "coco" not in args.metric:
        metrics = {}
    if "voc" in args.metric:
        metrics.update(voc_evaluate(dataset.coco, results, image_ids=dataset.image_ids, cat_ids=cat_ids))
    print_metrics(metrics)
    print(f"{len(dataset)} images, {len(results)} detections")
    if args.output:
        report = {**metrics, "num_images": len(dataset), "num_detections": len(results),
                  "model": model.config.name, "weights": args.weights, "ann": source, "format": dataset.format,
                  "dtype": args.dtype, "winograd": args.winograd}
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
        log.info("wrote %s", args.output)
    if args.results:
        Path(args.results).write_text(json.dumps(results))
        log.info("wrote %s (%d detections, COCO results format)", args.results, len(results))
    return 0
