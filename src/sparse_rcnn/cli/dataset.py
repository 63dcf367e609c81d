"""``sparse-rcnn convert-data`` and ``show-data``: a dataset from one format (COCO, YOLO, Pascal VOC) to
another; a look at a dataset (images with boxes, histograms, the validator's problems) before training."""

from __future__ import annotations

import argparse
import logging
import signal

from ..common import check_outside
from ..data import FORMATS, convert_dataset
from ..visualize import show_dataset
from .args import add_data_args, add_data_set_arg, data_config, dataset_from_args, positive_int

log = logging.getLogger("sparse_rcnn")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "convert-data",
        help="convert a dataset between COCO, YOLO and Pascal VOC",
        description="Read SRC (a COCO .json, a YOLO data.yaml or a Pascal VOC folder; validated like training data) "
        "and write it in another format to the new folder OUT (refused if OUT exists and is not empty). "
        "Conventions and what each format can hold: see the README, 'Train on your own data'.",
    )
    p.add_argument("src", help="a COCO .json, a YOLO data.yaml (or its folder), or a Pascal VOC folder")
    p.add_argument("--to", required=True, choices=FORMATS, help="the format to write")
    p.add_argument("out", help="a new (or empty) folder")
    p.add_argument("--data-format", choices=FORMATS, help="the format of SRC (default: detected)")
    p.add_argument(
        "--images",
        help="COCO source: its image folder "
        "(default: beside the json, or <root>/<split> for <root>/annotations/<split>.json)",
    )
    p.add_argument("--split", default="train", help="COCO source: the name its split gets (default: train)")
    add_data_set_arg(p)
    p.set_defaults(func=run_convert)

    p = sub.add_parser("show-data", help="look at a dataset: images with boxes, histograms, annotation problems")
    p.add_argument("--ann", help="COCO annotation JSON (or use --data)")
    p.add_argument("--images", help="folder holding the images named in the COCO json (default for --data: beside it)")
    add_data_args(p, split_help="YOLO / VOC split to show (default: train)")
    p.add_argument("--output", required=True, metavar="DIR", help="write index.html and its pictures here")
    p.add_argument("--count", type=positive_int, default=16, help="images in the grid (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="which random sample of images (default: 0)")
    p.add_argument("--first", action="store_true", help="show the first images instead of a random sample")
    p.set_defaults(func=run_show)


def _terminated(signum: int, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: the temporary output folder is removed


def run_convert(args: argparse.Namespace) -> int:
    policy = data_config(args.set, "convert-data").bad_annotations
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        counts = convert_dataset(
            args.src,
            args.out,
            args.to,
            format=args.data_format,
            images=args.images,
            split=args.split,
            bad_annotations=policy,
        )
    except SystemExit:
        log.error("SIGTERM: stopped; nothing was written to %s", args.out)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    for split, n in counts.items():
        print(f"{split}: {n} images")
    print(f"wrote {args.out} ({args.to})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    data_config(args.set, "show-data")
    # Problems are listed, not raised: the point is to see them.
    dataset = dataset_from_args(args, "skip", default_split="train")
    check_outside(args.output, dataset.image_folders())  # its pictures would become images of the split
    page = show_dataset(dataset, args.output, count=args.count, seed=None if args.first else args.seed)
    print(f"{len(dataset)} images, {len(dataset.class_names)} classes, {len(dataset.problems)} annotation problem(s)")
    print(f"overview: {page}")
    return 0
