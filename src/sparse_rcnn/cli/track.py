"""``sparse-rcnn eval-track`` (tracks against ground truth, scored by TrackEval) and
``sparse-rcnn make-clip`` (a generated clip of moving shapes with its ground-truth tracks)."""

from __future__ import annotations

import argparse
import json
import logging

from ..common import atomic_write, check_outputs
from ..data import ClipSpec
from ..video import FIELDS, evaluate_tracks, format_score, make_clip
from .args import positive_int

log = logging.getLogger("sparse_rcnn")
SHOWN = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN", "GT_IDs", "IDs")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "eval-track",
        help="score tracks (MOTChallenge text) against ground truth: HOTA, MOTA, IDF1, ID switches (TrackEval)",
        description="Scores computed by TrackEval as its run_mot_challenge.py does (MOT17 rules, IoU 0.5). "
        "Files: one sequence; folders: the MOTChallenge layout (GT/<seq>/gt/gt.txt with GT/<seq>/seqinfo.ini, "
        "PRED/<seq>.txt).",
    )
    p.add_argument("--gt", required=True, help="ground truth: a MOT file frame,id,x,y,w,h[,...] or a folder")
    p.add_argument("--pred", required=True, help="tracks: a MOT file (predict --track --format mot) or a folder")
    p.add_argument("--output", help="also write the scores as JSON here")
    p.set_defaults(func=run_eval_track)

    p = sub.add_parser(
        "make-clip",
        help="generate a clip of moving shapes (the demo's classes) and its ground-truth tracks",
    )
    p.add_argument("video", help="the clip to write: .mp4, .mkv or .avi")
    p.add_argument("--gt", help="write the ground-truth tracks here (MOTChallenge text)")
    p.add_argument("--frames", type=positive_int, default=ClipSpec.num_frames)
    p.add_argument("--objects", type=positive_int, default=ClipSpec.num_objects)
    p.add_argument("--width", type=positive_int, default=ClipSpec.width)
    p.add_argument("--height", type=positive_int, default=ClipSpec.height)
    p.add_argument("--fps", type=float, default=ClipSpec.fps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lossless", action="store_true", help="FFV1 (.mkv/.avi) or H.264 RGB crf 0 (.mp4)")
    p.set_defaults(func=run_make_clip)


def run_eval_track(args: argparse.Namespace) -> int:
    check_outputs([args.output], [args.gt, args.pred])
    scores = evaluate_tracks(args.gt, args.pred)
    rows = [*scores.sequences.items(), ("COMBINED", scores.combined)] if len(scores.sequences) > 1 else []
    rows = rows or [("COMBINED", scores.combined)]
    print(f"{'sequence':<20}" + "".join(f"{name:>10}" for name in SHOWN))
    for seq, values in rows:
        print(f"{seq:<20}" + "".join(f"{format_score(n, values[n]):>10}" for n in SHOWN))
    if args.output:
        with atomic_write(args.output) as target:
            json.dump({"combined": scores.combined, "sequences": scores.sequences, "fields": list(FIELDS)}, target.file)
            target.file.write("\n")
    return 0


def run_make_clip(args: argparse.Namespace) -> int:
    check_outputs([args.video, args.gt])
    spec = ClipSpec(
        num_frames=args.frames,
        num_objects=args.objects,
        width=args.width,
        height=args.height,
        fps=args.fps,
        seed=args.seed,
    )
    files = make_clip(args.video, spec, gt=args.gt, lossless=args.lossless)
    print(f"{files.video}: {files.frames} frames, {files.tracks} tracks, {files.boxes} boxes")
    return 0
