"""``sparse-rcnn predict`` on videos and streams: the video flags, which inputs are videos, where each
video's frames go, and the run over the videos (the library's ``video.predict_video_file``).

Output layout. One video and no images: its frames go to ``--output`` (else stdout) and its drawing
to ``--save-vis OUT.mp4``. Several videos, or videos with images: each video's frames go to
``--output-dir/<stem>.jsonl`` (``.txt`` with ``--format mot``) and its drawing to
``--save-vis DIR/<stem>.mp4``; the images' records go to ``--output`` (else stdout) and their
drawings to ``--save-vis DIR`` exactly as without videos.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import Optional

from ..common import check_output_dir, check_outputs, unique_names
from ..data import IMAGE_EXTENSIONS
from ..engine import StopSignals
from ..video import (
    DEFAULT_NMS,
    TRACKERS,
    VIDEO_EXTENSIONS,
    TrackSettings,
    VideoError,
    VideoStopped,
    is_video,
    predict_video_file,
)
from .args import UsageError, positive_int

log = logging.getLogger("sparse_rcnn")


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def seconds(text: str) -> float:
    """argparse type: seconds >= 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def add_video_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "videos and streams",
        "inputs ending in " + " ".join(sorted(VIDEO_EXTENSIONS)) + ", or rtsp:// http:// ... URLs, are videos: "
        "one JSON record per frame (JSON Lines)",
    )
    g.add_argument("--output-dir", help="with several videos, or videos and images: each video's frames go here")
    g.add_argument("--every", type=positive_int, default=1, metavar="N", help="detect one frame in N")
    g.add_argument("--max-fps", type=positive_float, metavar="F", help="detect at most F frames per second of video")
    g.add_argument("--start", type=seconds, default=0.0, metavar="SECONDS", help="first time to detect")
    g.add_argument("--end", type=seconds, metavar="SECONDS", help="stop at this time")
    g.add_argument("--track", action="store_true", help="track objects across frames: each detection gets a track_id")
    g.add_argument("--tracker", choices=TRACKERS, default="bytetrack", help="tracker of Roboflow's trackers package")
    g.add_argument(
        "--track-high-thr",
        type=float,
        help="score of the first association and of new tracks (default: per class, the model's stored "
        "F1-optimal threshold from eval --save-thresholds; 0.3 without)",
    )
    g.add_argument("--track-thr", type=float, help="lowest score given to the tracker (default: a third of the high)")
    g.add_argument("--track-match-thr", type=float, help="IoU a detection needs with a track (default: 0.1)")
    g.add_argument(
        "--track-buffer", type=positive_int, help="frames (at 30 fps) a lost track is kept (default: 30, one second)"
    )
    g.add_argument(
        "--track-nms",
        type=float,
        metavar="IOU",
        help=f"before tracking, drop a box overlapping a better one above this IoU (default: {DEFAULT_NMS}; 0: off; "
        "Sparse R-CNN has no NMS of its own, and its duplicate boxes would become extra tracks)",
    )
    g.add_argument(
        "--track-per-class",
        action="store_true",
        help="one tracker per class (a track keeps one class; NMS class-wise) instead of one for all classes",
    )


def split_inputs(items: list[str]) -> tuple[list[str], list[str]]:
    """(images, videos): videos by extension or URL; a folder stands for its images and videos."""
    images: list[str] = []
    videos: list[str] = []
    for item in items:
        path = Path(item)
        if is_video(item):
            videos.append(item)
        elif path.is_dir():
            children = sorted(c for c in path.iterdir() if c.is_file() and not c.name.startswith("."))
            found = [str(c) for c in children if c.suffix.lower() in VIDEO_EXTENSIONS]
            videos += found
            if not found or any(c.suffix.lower() in IMAGE_EXTENSIONS for c in children):
                images.append(item)
        else:
            images.append(item)
    return images, videos


def check_video_args(args: argparse.Namespace, images: list[str], videos: list[str]) -> None:
    """Refuse, before any work, video flags without videos and outputs that do not fit the layout."""
    given = [f for f, v in (("--track", args.track), ("--output-dir", args.output_dir)) if v]
    given += [f for f, v in (("--every", args.every != 1), ("--start", args.start), ("--end", args.end)) if v]
    if not videos:
        if given or args.max_fps or args.format == "mot":
            raise UsageError(f"{(given or ['--max-fps/--format mot'])[0]} applies to videos, and no input is one")
        return
    if args.format == "coco":
        raise UsageError("--format coco is for images; videos give records (JSON Lines) or mot")
    if args.format == "mot" and not args.track:
        raise UsageError("--format mot writes track ids: add --track")
    if args.end is not None and args.end <= args.start:
        raise UsageError(f"--end ({args.end}) must come after --start ({args.start})")
    several = len(videos) > 1 or bool(images)
    if several and not args.output_dir:
        raise UsageError("several videos, or videos and images: give --output-dir for the videos' frames")
    if not several and args.output_dir:
        raise UsageError("one video: its frames go to --output (or stdout); --output-dir is for several")
    if args.save_vis and not several and Path(args.save_vis).suffix.lower() not in (".mp4", ".mkv", ".avi", ".mov"):
        raise UsageError(f"--save-vis {args.save_vis}: name the annotated video, e.g. out.mp4")
    if args.output_dir:
        check_output_dir(args.output_dir)
    if args.save_vis and several:
        check_output_dir(args.save_vis)
    outputs = [p for pair in video_outputs(args, videos) for p in pair]
    files = [v for v in videos if not is_video(v) or Path(v).exists()]
    check_outputs(outputs, files)


def video_outputs(args: argparse.Namespace, videos: list[str]) -> list[tuple[Optional[str], Optional[str]]]:
    """(frames file or None for stdout, annotated video or None) of each video."""
    if len(videos) == 1 and not args.output_dir:
        return [(args.output, args.save_vis)]
    suffix = ".txt" if args.format == "mot" else ".jsonl"
    names = unique_names(videos, suffix)
    vis = unique_names(videos, ".mp4") if args.save_vis else [None] * len(videos)
    return [(str(Path(args.output_dir) / n), str(Path(args.save_vis) / v) if v else None) for n, v in zip(names, vis)]


def track_settings(args: argparse.Namespace, detector) -> Optional[TrackSettings]:
    if not args.track:
        return None
    try:
        return TrackSettings.for_detector(
            detector,
            tracker=args.tracker,
            low=args.track_thr,
            high=args.track_high_thr,
            match_thr=args.track_match_thr,
            buffer=args.track_buffer,
            nms=args.track_nms,
            per_class=args.track_per_class,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def run_videos(args: argparse.Namespace, detector, videos: list[str]) -> int:
    """Predict each video to its outputs; 0 all done, 1 some failed or broke, 128 + signal when stopped."""
    settings = track_settings(args, detector)
    failed = 0
    with StopSignals() as signals:

        def stop() -> None:
            if signals.signum is not None:
                raise VideoStopped(signals.signum)

        for path, (output, vis) in zip(videos, video_outputs(args, videos)):
            try:
                summary = predict_video_file(
                    detector,
                    path,
                    output,
                    format=args.format,
                    vis=vis,
                    batch_size=args.batch_size,
                    score_thr=args.score_thr,
                    pad=args.pad,
                    every=args.every,
                    max_fps=args.max_fps,
                    start=args.start,
                    end=args.end,
                    track=settings,
                    stop=stop,
                    progress=True,
                )
            except VideoError as e:
                if len(videos) == 1:
                    raise
                log.error("skipped %s", e)
                failed += 1
                continue
            if summary.error:
                log.error("%s (the %d frames before it are written)", summary.error, summary.frames)
                failed += 1
            if summary.signum:
                log.error(
                    "%s: stopped after %d frames of %s", signal.Signals(summary.signum).name, summary.frames, path
                )
                return 128 + summary.signum
            log.info("%s: %d frames -> %s", path, summary.frames, output or "stdout")
    return 1 if failed else 0
