"""``sparse-rcnn convert-data``: a dataset from one format (COCO, YOLO, Pascal VOC) to another."""

from __future__ import annotations

import argparse
import logging

from ..data.convert import convert_dataset
from ..data.sources import FORMATS
from .args import data_config

log = logging.getLogger("sparse_rcnn")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert-data", help="convert a dataset between COCO, YOLO and Pascal VOC",
        description="Read SRC (a COCO .json, a YOLO data.yaml or a Pascal VOC folder; validated like training data) "
        "and write it in another format to the new folder OUT (refused if OUT exists and is not empty). "
        "Conventions and what each format can hold: see the README, 'Train on your own data'.",
    )
    p.add_argument("src", help="a COCO .json, a YOLO data.yaml (or its folder), or a Pascal VOC folder")
    p.add_argument("--to", required=True, choices=FORMATS, help="the format to write")
    p.add_argument("out", help="a new (or empty) folder")
    p.add_argument("--data-format", choices=FORMATS, help="the format of SRC (default: detected)")
    p.add_argument("--images", help="COCO source: its image folder (default: beside the json, or <root>/<split> for <root>/annotations/<split>.json)")
    p.add_argument("--split", default="train", help="COCO source: the name its split gets (default: train)")
    p.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                   help="data option, e.g. data.bad_annotations=skip")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = data_config(args.set, "convert-data").bad_annotations
    counts = convert_dataset(args.src, args.out, args.to, format=args.data_format, images=args.images,
                             split=args.split, bad_annotations=policy)
    for split, n in counts.items():
        print(f"{split}: {n} images")
    print(f"wrote {args.out} ({args.to})")
    return 0
