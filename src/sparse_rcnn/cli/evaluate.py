"""``sparse-rcnn eval``: COCO box AP of a model on a COCO-format dataset."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from ..checkpoints import load_model
from ..config import ConfigError, config_from_dict
from ..data import CocoDetection
from ..evaluation import evaluate, match_categories
from ..outputs import atomic_write, check_outputs
from .args import (
    UsageError, add_fast_mode_args, add_model_args, apply_fast_mode, device_arg, non_negative_int, positive_int,
    print_metrics,
)

log = logging.getLogger("sparse_rcnn")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="COCO box AP of a model on a COCO-format annotation file")
    add_model_args(p)
    p.add_argument("--ann", required=True, help="COCO annotation JSON")
    p.add_argument("--images", required=True, help="folder holding the images named in --ann")
    p.add_argument("--output", help="write the metrics here as JSON")
    p.add_argument("--results", help="write the detections here (COCO results JSON)")
    p.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                   help="data option, e.g. data.bad_annotations=skip")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="image decoding processes")
    add_fast_mode_args(p)
    p.set_defaults(func=run)


def _data_config(overrides: list[str]):
    """Only the data section matters to eval; validated like any config."""
    raw: dict = {"data": {}}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section != "data" or not name:
            raise ConfigError(f"--set {item!r}: eval takes data.KEY=VALUE, e.g. data.bad_annotations=skip")
        raw["data"][name] = yaml.safe_load(value)
    return config_from_dict(raw).data


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
    data_cfg = _data_config(args.set)
    weights = args.weights if args.weights and not args.weights.startswith(("http://", "https://")) else None
    check_outputs([args.output, args.results], [args.ann, weights])
    _check_writable([Path(p) for p in (args.output, args.results) if p])
    dataset = CocoDetection(args.ann, args.images, train=False, bad_annotations=data_cfg.bad_annotations)
    model = load_model(args.model, args.weights, device=args.device)  # after the data: its errors come first
    apply_fast_mode(model, args)
    cat_ids = match_categories(model.class_names, list(zip(dataset.cat_ids, dataset.class_names)), args.ann)
    if cat_ids is None:
        raise ConfigError(
            f"{args.ann} has {len(dataset.cat_ids)} categories but the model predicts {model.num_classes} classes; "
            "pick the matching --model/--weights"
        )
    metrics, results = evaluate(
        model, dataset, batch_size=args.batch_size, device=args.device, workers=args.workers, classwise=True,
        cat_ids=cat_ids, progress=sys.stderr.isatty(),
    )
    print_metrics(metrics)
    print(f"{len(dataset)} images, {len(results)} detections")
    if args.output:
        report = {**metrics, "num_images": len(dataset), "num_detections": len(results),
                  "model": model.config.name, "weights": args.weights, "ann": str(args.ann),
                  "dtype": args.dtype, "winograd": args.winograd}
        with atomic_write(args.output) as out:
            out.file.write(json.dumps(report, indent=2) + "\n")
        log.info("wrote %s", args.output)
    if args.results:
        with atomic_write(args.results) as out:
            out.file.write(json.dumps(results))
        log.info("wrote %s (%d detections, COCO results format)", args.results, len(results))
    return 0
