"""``sparse-rcnn predict``: files, folders and lists of images -> JSON records or COCO results;
videos and streams -> one record per frame (``cli/video.py``)."""

from __future__ import annotations

import argparse
import logging
import signal
import tempfile
from pathlib import Path

import torch

from ..common import Processes, check_output_dir, check_outputs, init_process_group, pick_device
from ..data import expand_image_paths
from ..engine import PredictionStopped, predict_files
from ..evaluation import coco_category_ids
from ..inference import PAD_MODES
from .args import (
    UsageError,
    add_fast_mode_args,
    add_model_args,
    add_runtime_args,
    detector_from_args,
    device_arg,
    non_negative_int,
    positive_int,
    runtime_of,
    score_thr_arg,
)
from .video import add_video_args, check_video_args, run_videos, split_inputs
from .views import add_view_args, views_from_args

log = logging.getLogger("sparse_rcnn")


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="detect objects in images and videos (files, folders, streams)")
    p.add_argument(
        "images", nargs="*", help="image or video files, folders of them, stream URLs, or @LIST (one path per line)"
    )
    add_model_args(p)
    p.add_argument("--output", help="write the JSON here instead of stdout")
    p.add_argument(
        "--save-vis",
        metavar="DIR",
        help="write each image with its boxes drawn to DIR/<stem>.png (<stem>-2.png, ... when stems repeat); "
        "one video: the annotated video OUT.mp4; several: DIR/<stem>.mp4",
    )
    p.add_argument(
        "--score-thr",
        type=score_thr_arg,
        default=0.0,
        help="keep detections with score >= this; auto: the per-class thresholds stored by eval --save-thresholds",
    )
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="image decoding processes")
    p.add_argument("--list", action="append", metavar="FILE", help="file with one image path per line (or @FILE)")
    p.add_argument(
        "--format",
        choices=("records", "coco", "mot"),
        default="records",
        help="records: one entry per image or video frame (default); coco: COCO results [{image_id, category_id, "
        "bbox, score}] (images); mot: MOTChallenge rows frame,id,x,y,w,h,score,-1,-1,-1 (videos, with --track)",
    )
    p.add_argument("--ann", help="COCO annotation JSON: image ids by file name, category ids by name (--format coco)")
    p.add_argument(
        "--pad",
        choices=PAD_MODES,
        default="bucket",
        help="bucket (default): batch only images of one padded shape, each through the model alone, so every "
        "answer is bit-identical to batch 1's; largest: pad every batch to its largest image and run it as one "
        "forward, as MMDetection (parity checks; faster for small models, equal up to float rounding)",
    )
    add_runtime_args(p)
    add_fast_mode_args(p)
    add_video_args(p)
    add_view_args(p)
    p.set_defaults(func=run)


def _read_list_file(path: str) -> list[str]:
    """One image path per line; blank lines and lines starting with # are skipped."""
    try:
        with open(path) as f:
            return [s for line in f if (s := line.strip()) and not s.startswith("#")]
    except OSError as e:
        raise UsageError(f"cannot read the image list {path}: {e.strerror or e}") from None


def _inputs(args: argparse.Namespace) -> list[str]:
    """Files and folders as given; ``@FILE`` and ``--list FILE`` name list files."""
    items: list[str] = []
    for item in args.images:
        items += _read_list_file(item[1:]) if item.startswith("@") else [item]
    for path in args.list or []:
        items += _read_list_file(path)
    if not items:
        raise UsageError("no images given: pass files, folders, videos, @list.txt or --list FILE")
    return items


def _check_paths(args: argparse.Namespace, paths: list[str]) -> None:
    """Before any work: no output over an input, and every destination writable."""
    lists = [item[1:] for item in args.images if item.startswith("@")] + list(args.list or [])
    weights = args.weights if args.weights and not args.weights.startswith(("http://", "https://")) else None
    check_outputs([args.output], [*paths, weights, args.onnx, args.ann, *lists], folders=[args.save_vis])
    if args.save_vis:
        check_output_dir(args.save_vis)
    if args.output:
        try:
            with tempfile.TemporaryFile(dir=Path(args.output).parent):
                pass
        except OSError as e:
            raise UsageError(f"cannot write --output {args.output}: {e.strerror or e}") from None


def run(args: argparse.Namespace) -> int:
    images, videos = split_inputs(_inputs(args))
    check_video_args(args, images, videos)
    if videos:
        if args.tile is not None or args.tta:
            raise UsageError("--tile and --tta apply to images; predict videos without them")
        return _run_with_videos(args, images, videos)
    if args.save_vis and Path(args.save_vis).exists() and not Path(args.save_vis).is_dir():
        raise UsageError(f"--save-vis {args.save_vis}: exists and is not a folder")
    paths = expand_image_paths(images)
    _check_paths(args, paths)
    procs = Processes.from_env()  # under torchrun: this process's share of the images
    if procs.distributed and runtime_of(args) == "torch":
        args.device = str(pick_device(args.device, procs))  # one GPU per process
    detector = detector_from_args(args)
    owns_group = init_process_group(torch.device(args.device if not args.onnx else "cpu"), procs)
    try:
        return _predict(args, views_from_args(detector, args), paths, procs)
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def _run_with_videos(args: argparse.Namespace, images: list[str], videos: list[str]) -> int:
    """Videos (and images beside them): the images as without videos, then each video."""
    paths = expand_image_paths(images) if images else []
    if paths:
        _check_paths(args, paths)
    detector = detector_from_args(args)
    status = _predict(args, detector, paths, Processes()) if paths else 0
    if status > 1:
        return status
    return max(status, run_videos(args, detector, videos))


def _predict(args: argparse.Namespace, detector, paths: list[str], procs: Processes) -> int:
    coco_ids = coco_category_ids(detector.class_names, args.ann) if args.format == "coco" else None
    try:
        summary = predict_files(
            detector,
            paths,
            args.output,
            batch_size=args.batch_size,
            workers=args.workers,
            pad=args.pad,
            score_thr=args.score_thr,
            coco_ids=coco_ids,
            vis_dir=args.save_vis,
            processes=procs,
            progress=True,
        )
    except PredictionStopped as e:
        log.error("%s: stopped", signal.Signals(e.signum).name)
        return 128 + e.signum
    if summary.failed:
        if procs.is_main:
            log.error("%d of %d images failed", summary.failed, summary.images)
        return 1
    return 0
