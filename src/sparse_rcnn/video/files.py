"""One video to files: the library side of ``sparse-rcnn predict VIDEO``.

Records are written as JSON Lines (one frame per line) or, with tracking, as MOTChallenge rows,
each line flushed as soon as its frame is done: a run killed at any moment leaves every finished
frame as complete lines (at most the line being written is cut, and a reader of JSON Lines drops
a last line without its newline). The annotated video (``vis``) is drawn and encoded in a
background thread (``annotate.AnnotatedVideo``) and closed properly when the run ends, stops or the
stream breaks, with the frames done so far.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Optional, Union

from ..models.detector import Detector, ScoreThr
from .annotate import AnnotatedVideo
from .draw import FrameDrawer
from .mot import record_rows
from .predict import FramePrediction, VideoStopped, iter_video
from .reader import FrameReader, VideoError
from .tracking import TrackSettings
from .writer import FAST_PRESET, VideoWriter

log = logging.getLogger(__name__)
OUTPUT_FORMATS = ("records", "mot")


@dataclass
class VideoSummary:
    """How one video went: ``frames`` written; ``error`` the one line that ended it early (the
    frames before it are written); ``signum`` the signal that stopped it (0: none)."""

    path: str
    frames: int = 0
    error: Optional[str] = None
    signum: int = 0


def predict_video_file(
    detector: Detector,
    path: Union[str, Path],
    output: Union[str, Path, None] = None,
    *,
    format: str = "records",
    vis: Union[str, Path, None] = None,
    stream: Optional[IO[str]] = None,
    batch_size: int = 1,
    score_thr: ScoreThr = 0.0,
    pad: str = "bucket",
    every: int = 1,
    max_fps: Optional[float] = None,
    start: float = 0.0,
    end: Optional[float] = None,
    track: Optional[TrackSettings] = None,
    stop: Optional[Callable[[], None]] = None,
    progress: bool = False,
    on_frame: Optional[Callable[[FramePrediction], None]] = None,
) -> VideoSummary:
    """Predict the video ``path`` and write its frames to ``output`` (else ``stream``, else stdout).

    format: ``"records"`` (JSON Lines of frame records) or ``"mot"`` (MOTChallenge rows; needs
    ``track``). vis: write the annotated video here (same size and frame rate; with ``track`` the
    ids and trails). The other options (``pad`` among them) are ``predict_video``'s. A video that cannot be opened
    raises ``VideoError``; one that breaks later returns its summary with ``error`` set.
    ``stop`` may raise ``VideoStopped``: the summary then has its ``signum``. ``on_frame`` is
    called with each written frame's ``FramePrediction`` (with its ``image``).
    """
    if format not in OUTPUT_FORMATS:
        raise ValueError(f"`format` must be one of {OUTPUT_FORMATS}, got {format!r}")
    if format == "mot" and track is None:
        raise ValueError("`format=mot` writes track ids: give `track` too")
    reader = FrameReader(path, every=every, max_fps=max_fps, start=start, end=end, read_ahead=2 * batch_size + 2)
    summary = VideoSummary(str(path))
    if reader.info.fps:
        log.info(
            "%s: %dx%d, %.3g fps, %s frames",
            path,
            reader.info.width,
            reader.info.height,
            reader.info.fps,
            reader.info.frames or "unknown",
        )
    with contextlib.ExitStack() as stack:
        stack.callback(reader.close)  # also when an output cannot be opened
        out = stream or sys.stdout
        if output is not None:
            out = stack.enter_context(open(output, "w", encoding="utf-8"))
        annotated = None
        if vis is not None:
            fps = reader.info.fps / every if not max_fps else min(max_fps, reader.info.fps / every)
            writer = VideoWriter(vis, reader.info.width, reader.info.height, fps, preset=FAST_PRESET)
            annotated = AnnotatedVideo(writer, FrameDrawer(detector.class_names), depth=2 * batch_size + 2)
            stack.callback(annotated.close)
        frames = iter_video(
            detector,
            reader,
            batch_size=batch_size,
            score_thr=score_thr,
            pad=pad,
            track=track,
            keep_images=annotated is not None or on_frame is not None,
            stop=stop,
            progress=progress,
        )
        try:
            for pred in frames:
                lines = record_rows(pred.record) if format == "mot" else [json.dumps(pred.record)]
                out.write("".join(line + "\n" for line in lines))
                out.flush()
                summary.frames += 1
                if annotated is not None:
                    assert pred.image is not None  # kept for the drawing
                    annotated.put(pred.image, pred.detections)
                if on_frame is not None:
                    on_frame(pred)
        except VideoError as e:
            summary.error = str(e)
        except VideoStopped as e:
            summary.signum = e.signum
    return summary
