"""``--tile`` (sliced inference) and ``--tta`` (test-time augmentation) for ``predict`` and ``eval``:
the options, and the model wrapped in ``inference.TiledDetector`` / ``inference.TTADetector``,
which the commands then use as any detector (same records, same COCO results)."""

from __future__ import annotations

import argparse
from typing import Any

from ..inference import MERGE_METHODS, TTA_SCALES, TiledDetector, TTADetector
from .args import UsageError, positive_int


def tile_arg(text: str) -> tuple[int, int]:
    """argparse type for ``--tile WxH`` (or ``N`` for N x N), original pixels."""
    try:
        sides = [int(v) for v in text.lower().split("x")]
    except ValueError:
        sides = []
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"tile {text!r}: expected WxH in pixels, e.g. 1024x1024 (or 1024)")
    return sides[0], sides[1]


def fraction_arg(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number such as 0.2") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1), got {value}")
    return value


def iou_arg(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number such as 0.5") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value}")
    return value


def scales_arg(text: str) -> tuple[float, ...]:
    """argparse type for ``--tta-scales 0.8,1.0,1.2``: positive numbers."""
    try:
        scales = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        scales = ()
    if not scales or min(scales) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers separated by commas, e.g. 0.8,1.0,1.2")
    return scales


def add_view_args(p: argparse.ArgumentParser) -> None:
    """The --tile and --tta options (docs/tiles.md)."""
    g = p.add_argument_group("sliced inference and test-time augmentation (docs/tiles.md)")
    g.add_argument(
        "--tile",
        type=tile_arg,
        metavar="WxH",
        help="also run overlapping WxH tiles of each original image (each resized to the test scale), merged",
    )
    g.add_argument("--tile-overlap", type=fraction_arg, default=0.2, help="overlap of neighbouring tiles (default 0.2)")
    g.add_argument("--no-full", action="store_true", help="with --tile: tiles only, not the whole image too")
    g.add_argument(
        "--tile-cut",
        choices=("drop", "keep"),
        default="drop",
        help="boxes ending at a tile's inner edge: drop (default) or keep for the merge (with --merge nmm)",
    )
    g.add_argument("--tta", action="store_true", help="test-time augmentation: --tta-scales, each also mirrored")
    g.add_argument(
        "--tta-scales",
        type=scales_arg,
        default=TTA_SCALES,
        metavar="S,S,...",
        help="with --tta: scales of the test scale (default 0.8,1.0,1.2)",
    )
    g.add_argument(
        "--merge",
        choices=MERGE_METHODS,
        default="nms",
        help="how the views' boxes merge: nms (class-wise, default), wbf (weighted box fusion), nmm (SAHI's greedy)",
    )
    g.add_argument("--merge-iou", type=iou_arg, default=0.5, help="overlap at which boxes merge (default 0.5)")
    g.add_argument(
        "--merge-match", choices=("iou", "ios"), default="iou", help="overlap measure of --merge nmm (ios: SAHI's)"
    )
    g.add_argument(
        "--max-detections",
        type=positive_int,
        metavar="N",
        help="detections per image after the merge (default: the model's per-image count); may exceed the proposals",
    )


def views_from_args(detector: Any, args: argparse.Namespace) -> Any:
    """``detector``, wrapped for --tta and then --tile (tiles of augmented views) when asked;
    --batch-size views (tiles or augmented copies) go through one forward."""
    if args.tile is None and not args.tta:
        if args.max_detections is not None or args.no_full:
            raise UsageError("--max-detections and --no-full apply to --tile or --tta: add one of them")
        return detector
    merge = {"merge": args.merge, "iou_thr": args.merge_iou, "match": args.merge_match}
    batch = max(1, args.batch_size)
    if args.tta:
        last = args.tile is None
        detector = TTADetector(
            detector,
            scales=args.tta_scales,
            max_detections=args.max_detections if last else None,
            batch_size=batch,
            **merge,
        )
    if args.tile is not None:
        detector = TiledDetector(
            detector,
            args.tile,
            overlap=args.tile_overlap,
            with_full=not args.no_full,
            cut=args.tile_cut,
            max_detections=args.max_detections,
            batch_size=batch,
            **merge,
        )
    return detector
