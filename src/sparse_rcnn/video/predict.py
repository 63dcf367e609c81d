"""Detection (and tracking) on every kept frame of a video, through the one inference loop.

``predict_video(detector, path, ...)`` is the Python API: a generator of frame records
``{"frame": i, "time": seconds, "width", "height", "detections": [...]}`` whose detections carry
the fields of ``models.to_record`` (and ``"track_id"`` with ``track``). Frames are decoded ahead and
resized to the detector's input in a background thread (``reader.FrameReader`` with a
``transform``) and batched into the detector by ``inference.iter_predictions`` over an
``inference.ImageStream``.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import torch
from torch import Tensor
from tqdm import tqdm

from ..inference import ImageStream, Item, iter_predictions, prepare
from ..models.detector import Detector, ScoreThr, to_record
from .reader import FrameReader, VideoInfo
from .tracking import Tracker, TrackSettings

log = logging.getLogger(__name__)


class VideoStopped(Exception):
    """A stop was asked for (SIGINT / SIGTERM); ``signum`` names the signal, 0 if none."""

    def __init__(self, signum: int = 0) -> None:
        super().__init__(f"stopped by signal {signum}" if signum else "stopped")
        self.signum = signum


@dataclass
class FramePrediction:
    """One frame's ``record`` (JSON-ready), its ``detections`` (tensors ``boxes`` (k, 4), ``scores``,
    ``labels``, with tracking ``track_ids``) and, when asked for, its ``image`` (3, H, W) uint8."""

    record: dict
    detections: dict[str, Tensor]
    image: Optional[Tensor] = None


def frame_record(
    index: int, time: float, width: int, height: int, det: dict[str, Tensor], class_names: list[str]
) -> dict:
    """The JSON record of one frame: detections sorted by score, with ``track_id`` where tracked."""
    detections = to_record("", width, height, det, class_names)["detections"]
    if "track_ids" in det:
        order = torch.argsort(det["scores"], descending=True, stable=True).tolist()
        track_ids = det["track_ids"].tolist()
        for d, i in zip(detections, order):
            d["track_id"] = int(track_ids[i])
    return {
        "frame": int(index),
        "time": float(time),
        "width": int(width),
        "height": int(height),
        "detections": detections,
    }


def expected_frames(info: VideoInfo, every: int, max_fps: Optional[float], start: float, end: Optional[float]) -> int:
    """About how many frames the options keep (0 when the length is unknown): for the progress bar."""
    if not info.frames or not info.fps:
        return 0
    last = min(info.frames, math.ceil(end * info.fps)) if end is not None else info.frames
    n = max(0, last - math.ceil(start * info.fps))
    n = math.ceil(n / every)
    if max_fps is not None and max_fps < info.fps / every:
        n = math.ceil(n * max_fps * every / info.fps)
    return n


def iter_video(
    detector: Detector,
    reader: FrameReader,
    *,
    batch_size: int = 1,
    score_thr: ScoreThr = 0.0,
    pad: str = "bucket",
    track: Optional[TrackSettings] = None,
    keep_images: bool = False,
    stop: Optional[Callable[[], None]] = None,
    progress: bool = False,
) -> Iterator[FramePrediction]:
    """``FramePrediction``s of the frames ``reader`` keeps, in order. ``stop`` is called before each
    frame and may raise (e.g. ``VideoStopped``) to end the run; ``track``: track with these settings.
    ``pad``: as ``inference.iter_predictions`` ("bucket": each frame alone through the model, its
    answer bit-identical to the frame's at batch 1; "largest": a batch of frames as one forward).
    A stream that breaks raises ``VideoError`` after the frames before it."""
    times: dict[int, float] = {}
    names = list(detector.class_names)
    tracker = Tracker(track, len(names), reader.info.fps) if track is not None else None

    scale = detector.test_scale
    if reader.transform is None:  # resized in the decoding thread: this one only runs the model
        reader.transform = lambda image: prepare(0, None, image, scale)

    def pairs() -> Iterator[tuple[int, Any]]:
        for frame in reader:
            times[frame.index] = frame.time
            yield frame.index, frame.data if isinstance(frame.data, Item) else frame.image

    total = expected_frames(reader.info, reader.every, reader.max_fps, reader.start, reader.end)
    bar = tqdm(
        total=total or None,
        desc=Path(reader.path).name or reader.path,
        unit="frame",
        leave=False,
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),
    )
    stream = ImageStream(pairs(), detector.test_scale)
    try:
        for pred in iter_predictions(
            detector,
            stream,
            batch_size=batch_size,
            score_thr=score_thr,
            pad=pad,
            keep_images=keep_images,
            stop=stop,
        ):
            time = times.pop(pred.key)
            if pred.error is not None:  # a decoded frame is always an image; kept for completeness
                log.error("frame %d: %s", pred.key, pred.error)
                continue
            det = pred.detections
            assert det is not None  # a prediction without an error has its detections
            if tracker is not None:
                det = tracker.update(det, time)
            record = frame_record(pred.key, time, pred.width, pred.height, det, names)
            yield FramePrediction(record, det, pred.image)
            bar.update(1)
            if stop is not None:
                stop()
    finally:
        bar.close()
        reader.close()


def predict_video(
    detector: Detector,
    path: Union[str, Path],
    *,
    batch_size: int = 1,
    score_thr: ScoreThr = 0.0,
    pad: str = "bucket",
    every: int = 1,
    max_fps: Optional[float] = None,
    start: float = 0.0,
    end: Optional[float] = None,
    track: Union[bool, TrackSettings] = False,
    stop: Optional[Callable[[], None]] = None,
    progress: bool = False,
) -> Iterator[dict]:
    """Detect objects in every kept frame of the video or stream ``path``; yields frame records.

    every: keep one frame in N; max_fps: at most F frames per second of video; start / end: seconds;
    pad: ``"largest"`` runs a batch of frames as one forward (see ``iter_video``).
    track: ``True`` tracks with ByteTrack and thresholds derived from the model
    (``TrackSettings.for_detector``), or give ``TrackSettings``; each detection then has a
    ``track_id`` (> 0) and only tracked detections are listed.
    Raises ``VideoError`` for a path that cannot be read as a video (one line), and after the
    frames read so far when a stream breaks.
    """
    reader = FrameReader(path, every=every, max_fps=max_fps, start=start, end=end, read_ahead=2 * batch_size + 2)
    settings = TrackSettings.for_detector(detector) if track is True else (track or None)
    for pred in iter_video(
        detector,
        reader,
        batch_size=batch_size,
        score_thr=score_thr,
        pad=pad,
        track=settings,
        stop=stop,
        progress=progress,
    ):
        yield pred.record
