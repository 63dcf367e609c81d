"""Reading video frames with PyAV (FFmpeg): any file or stream FFmpeg opens (``.mp4``, ``.mkv``,
``.avi``, ``rtsp://``, ``http://``), decoded in a background thread that reads a few frames ahead.

Frames are numbered from 0 in decoding order over the whole video, so ``start`` decodes (without
converting or detecting) the frames before it and a frame keeps its number whatever is skipped.
``time`` is the frame's presentation time in seconds (its timestamp, so a variable frame rate is
honoured), counted from the stream's first frame. ``every`` keeps one frame in N; ``max_fps``
keeps at most F frames per second of video (by time).

Errors are ``VideoError`` with one line: a path that is no video, a file with no video stream, no
frame at all. A stream that breaks after some frames ends the iteration with a ``VideoError``
naming the frame; the frames before it have been yielded.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"})
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class VideoError(Exception):
    """A video cannot be read (or stopped being readable); the message names it and says why."""


class MissingVideoPackageError(VideoError):
    """An optional package of the ``video`` extra (``av``, ``trackers``, ``trackeval``) is not installed."""


def require(module: str, package: str):
    """Import the optional ``module`` (from pip ``package``) or raise ``MissingVideoPackageError``."""
    try:
        return __import__(module)
    except ImportError:
        raise MissingVideoPackageError(
            f"{module} is not installed: pip install {package} (or sparse-rcnn[video])"
        ) from None


def is_video(path: Union[str, Path]) -> bool:
    """Whether ``path`` names a video: a stream URL or a file with a video extension."""
    text = str(path)
    return text.lower().startswith(STREAM_PREFIXES) or Path(text).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoInfo:
    """What the container says of its first video stream; ``frames`` is 0 when unknown (streams,
    some containers) and ``fps`` is the average frame rate (0.0 when unknown)."""

    path: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float  # seconds, 0.0 when unknown


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its number in the video (0-based), its time in seconds, the (H, W, 3)
    uint8 RGB pixels and what the reader's ``transform`` made of them (None without one)."""

    index: int
    time: float
    image: np.ndarray
    data: Any = None


def _open(path: str, timeout: float):
    av = require("av", "av")
    if not path.lower().startswith(STREAM_PREFIXES) and not Path(path).is_file():
        raise VideoError(f"{path}: no such file" if not Path(path).exists() else f"{path}: not a file")
    try:
        container = av.open(path, timeout=timeout)
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: cannot open as a video: {_reason(e)}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: holds no video stream")
    return container


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.splitlines()[0] if text else type(e).__name__


def probe(path: Union[str, Path], timeout: float = 10.0) -> VideoInfo:
    """The size, frame rate, length of ``path``'s first video stream (no frame decoded)."""
    container = _open(str(path), timeout)
    try:
        return _info(str(path), container)
    finally:
        container.close()


def _info(path: str, container) -> VideoInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    if not duration and container.duration:
        duration = container.duration / 1_000_000
    frames = int(stream.frames or 0) or (int(round(duration * fps)) if duration and fps else 0)
    return VideoInfo(path, int(stream.codec_context.width), int(stream.codec_context.height), fps, frames, duration)


class FrameReader:
    """The frames of ``path`` that ``every`` / ``max_fps`` / ``start`` / ``end`` keep, decoded by a
    background thread up to ``read_ahead`` frames before they are asked for.

    Iterate it once; ``info`` is known from construction on. ``close`` (or leaving the iteration
    early) stops the thread. ``decoded`` counts the frames decoded so far, kept or not.
    ``transform`` (may be set until the iteration starts): a function of a kept frame's pixels,
    called in the decoding thread (e.g. the resize to the detector's input), its result the
    frame's ``data``.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        every: int = 1,
        max_fps: Optional[float] = None,
        start: float = 0.0,
        end: Optional[float] = None,
        read_ahead: int = 8,
        timeout: float = 10.0,
        transform: Optional[Callable[[np.ndarray], Any]] = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"`every` must be >= 1, got {every}")
        if max_fps is not None and not max_fps > 0:
            raise ValueError(f"`max_fps` must be > 0, got {max_fps}")
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"`start` ({start}) must be >= 0 and below `end` ({end})")
        self.path, self.every, self.max_fps, self.start, self.end = str(path), every, max_fps, start, end
        self._container = _open(self.path, timeout)
        self.info = _info(self.path, self._container)
        self.decoded = 0
        self.transform = transform
        self.variable_rate = False
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, read_ahead))
        self._closed = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is not None:
            raise RuntimeError("a FrameReader is iterated once")
        self._thread = threading.Thread(target=self._decode, name=f"decode {self.path}", daemon=True)
        self._thread.start()
        try:
            while True:
                kind, value = self._queue.get()
                if kind == "frame":
                    yield value
                elif kind == "error":
                    raise VideoError(value)
                else:
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop decoding and release the file (idempotent)."""
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            while self._thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    self._thread.join(0.05)
        if self._container is not None:
            self._container.close()
            self._container = None

    def _put(self, item) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        av = require("av", "av")
        kept = 0
        try:
            for frame in self._frames():
                if self._closed.is_set():
                    return
                if frame is None:
                    continue
                kept += 1
                if not self._put(("frame", frame)):
                    return
        except av.FFmpegError as e:
            self._put(("error", f"{self.path}: the stream broke after frame {self.decoded - 1}: {_reason(e)}"))
            return
        except Exception as e:  # noqa: BLE001 - anything else a decoder raises, as one line to the reader
            self._put(("error", f"{self.path}: decoding failed after frame {self.decoded - 1}: {_reason(e)}"))
            return
        if self.decoded == 0:
            self._put(("error", f"{self.path}: holds no frames"))
            return
        if self.info.frames and self.decoded < self.info.frames and self.end is None:
            log.warning("%s: ended after %d of %d frames (truncated?)", self.path, self.decoded, self.info.frames)
        self._put(("end", kept))

    def _frames(self) -> Iterator[Optional[Frame]]:
        """Every decoded frame in order: a ``Frame`` when kept, else None."""
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        # One converter for the whole video, on this thread: ``to_ndarray`` would build a new
        # swscale context (and its slice threads) for every frame. Same pixels either way.
        to_rgb = require("av", "av").video.reformatter.VideoReformatter()
        first: Optional[float] = None
        prev_t: Optional[float] = None
        prev_step: Optional[float] = None
        last_slot, since_start = -1, 0
        for av_frame in self._container.decode(stream):
            index = self.decoded
            self.decoded += 1
            t_raw = av_frame.time
            if t_raw is None:
                t_raw = index / self.info.fps if self.info.fps else float(index)
            first = t_raw if first is None else first
            t = float(t_raw - first)
            if prev_t is not None:
                step = t - prev_t
                if prev_step is not None and abs(step - prev_step) > 1e-3 and not self.variable_rate:
                    self.variable_rate = True
                    log.info("%s: variable frame rate; times come from the frames' timestamps", self.path)
                prev_step = step
            prev_t = t
            if self.end is not None and t >= self.end:
                return
            if t < self.start:
                yield None
                continue
            since_start += 1
            if (since_start - 1) % self.every:
                yield None
                continue
            if self.max_fps is not None:
                slot = math.floor((t - self.start) * self.max_fps + 1e-6)
                if slot <= last_slot:
                    yield None
                    continue
                last_slot = slot
            image = to_rgb.reformat(av_frame, format="rgb24", threads=1).to_ndarray()
            yield Frame(index, round(t, 6), image, self.transform(image) if self.transform is not None else None)
