"""``sparse-rcnn show-data``: a dataset's images with their boxes, class and box-size histograms,
and the annotation problems the validator found, before training on it."""

from __future__ import annotations

import argparse
import logging

from ..data import CocoDetection
from ..visualize.dataset import show_dataset
from .args import positive_int

log = logging.getLogger("sparse_rcnn")


def add_parser(sub) -> None:
    p = sub.add_parser("show-data", help="look at a COCO-format dataset: images with boxes, histograms, problems")
    p.add_argument("--ann", required=True, help="COCO annotation JSON")
    p.add_argument("--images", required=True, help="folder holding the images named in --ann")
    p.add_argument("--output", required=True, metavar="DIR", help="write index.html and its pictures here")
    p.add_argument("--count", type=positive_int, default=16, help="images in the grid (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="which random sample of images (default: 0)")
    p.add_argument("--first", action="store_true", help="show the first images instead of a random sample")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Problems are listed, not raised: the point is to see them.
    dataset = CocoDetection(args.ann, args.images, train=False, bad_annotations="skip")
    page = show_dataset(dataset, args.output, count=args.count, seed=None if args.first else args.seed)
    print(f"{len(dataset)} images, {len(dataset.class_names)} classes, {len(dataset.problems)} annotation problem(s)")
    print(f"overview: {page}")
    return 0
