"""``sparse-rcnn quantize``: an exported graph to INT8 (QDQ ONNX) with NNCF, calibrated on a dataset's
images or a folder, optionally guarded by the box AP on a validation split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..common import check_output_dir, check_outputs
from ..data import CocoDetection, expand_image_paths, load_split
from ..deploy import RUNTIMES, SCOPE_HELP, SCOPES, import_runtime
from ..engine import quantize_model_file
from .args import UsageError, add_data_args, data_config, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "quantize",
        help="INT8 post-training quantization of an exported graph (NNCF; QDQ ONNX for onnxruntime and openvino)",
    )
    p.add_argument("--onnx", required=True, metavar="MODEL.onnx", help="the fp32 graph from `sparse-rcnn export`")
    p.add_argument("--output", required=True, metavar="MODEL-int8.onnx", help="the int8 graph to write")
    add_data_args(p, "split to calibrate on (YOLO / VOC; default: train)")
    p.add_argument("--images", metavar="DIR", help="calibrate on the images of this folder instead of --data")
    p.add_argument("--num-images", type=positive_int, default=300, help="calibration images (default: 300)")
    p.add_argument(
        "--val-split",
        metavar="SPLIT",
        help="accuracy guard: box AP on this split of --data (YOLO / VOC), or of --val-data",
    )
    p.add_argument("--val-data", metavar="PATH", help="accuracy guard: box AP on this dataset (e.g. a COCO val json)")
    p.add_argument("--val-images", metavar="DIR", help="the image folder of a COCO --val-data (default: beside it)")
    p.add_argument(
        "--max-ap-drop",
        type=float,
        default=0.01,
        help="accuracy guard: the largest box AP drop allowed (absolute, default 0.01); "
        "operations go back to fp32 until it holds",
    )
    p.add_argument(
        "--scope",
        choices=list(SCOPES),
        default="backbone",
        help="what is quantized: " + "; ".join(f"{k}: {v}" for k, v in SCOPE_HELP.items()),
    )
    p.add_argument(
        "--runtime", choices=RUNTIMES, default="onnxruntime", help="what runs the graphs the accuracy guard scores"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data_cfg = data_config(args.set, "quantize")
    # a missing NNCF is one line before any data is read; NNCF sets its own log level on import
    import_runtime("nncf", extra="int8")
    logging.getLogger("nncf").setLevel(logging.INFO if args.verbose else logging.WARNING)  # NNCF logs every node
    check_outputs([args.output], [args.onnx, args.data, args.val_data])
    check_output_dir(Path(args.output).parent)
    if bool(args.data) == bool(args.images):
        raise UsageError("name the calibration images: --data PATH (its train split) or --images DIR")
    calibration = images = validation = None
    if args.images:
        if not Path(args.images).is_dir():
            raise UsageError(f"--images {args.images}: not a folder of images")
        images = expand_image_paths([args.images])
    else:
        split = load_split(args.data, format=args.data_format, split=args.split or "train")
        calibration = CocoDetection.from_split(split, train=False, bad_annotations=data_cfg.bad_annotations)
    if args.val_split or args.val_data:
        source = args.val_data or args.data
        if source is None:
            raise UsageError("--val-split names a split of --data; with --images, pass --val-data")
        split = load_split(source, split=args.val_split or "val", images=args.val_images)
        if split.format == "coco" and args.val_split and not args.val_data:
            raise UsageError("a COCO json is one split: pass the validation json as --val-data")
        validation = CocoDetection.from_split(split, train=False, bad_annotations=data_cfg.bad_annotations)
    report = quantize_model_file(
        args.onnx,
        args.output,
        calibration=calibration,
        images=images,
        num_images=args.num_images,
        validation=validation,
        max_ap_drop=args.max_ap_drop,
        scope=args.scope,
        runtime=args.runtime,
    )
    print(args.output)
    if report.fp32_metric is not None:
        print(
            f"box AP: fp32 {report.fp32_metric:.4f}, int8 {report.int8_metric:.4f} "
            f"(drop {report.metric_drop:.4f}, allowed {report.max_drop})"
        )
    print(f"int8 scope {report.scope}: {report.kept_fp32}; calibrated on {report.calibration_images} images")
    return 0
