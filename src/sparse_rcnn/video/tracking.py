"""Tracking by detection: a small adapter over Roboflow's ``trackers`` package (ByteTrack by
default) that takes the detections of any source, frame by frame, and gives each a track id.

One tracker runs per class, so a box never changes class along its track and two classes' boxes on
one object (Sparse R-CNN may return both) never compete; ids are numbered 1, 2, ... over all
classes in the order tracks are confirmed.

Thresholds. ByteTrack's stock ones (``high_conf_det_threshold`` 0.6, ``track_activation_threshold``
0.7, detections below 0.1 dropped) assume scores near 1; Sparse R-CNN's focal-loss scores are lower
(the demo model's best are ~0.6). ``TrackSettings.for_detector`` derives them from the model: the
high threshold of a class is its F1-optimal score threshold stored by ``eval --save-thresholds``
(``detector.score_thresholds``), a new track needs that score too, and the low threshold is a
third of it (ByteTrack's low/high ratio, 0.1 / 0.3 rounded). A model without stored thresholds
gets 0.3 / 0.1 for every class, with a warning. The IoU a match needs (``match_thr``, 0.1) and the
lost-track buffer (30 frames at 30 fps, i.e. one second; ``trackers`` scales it by the frame
rate) are ``trackers``' defaults. Frame times are passed on, so skipped frames and a variable
frame rate count as the time they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..models.detector import thresholds_per_label
from .reader import require

log = logging.getLogger(__name__)
TRACKERS = ("bytetrack", "sort", "ocsort")
_FALLBACK_HIGH = 0.3
_LOW_RATIO = 1 / 3


@dataclass(frozen=True)
class TrackSettings:
    """The tracker and its thresholds, one per class (label order) where they differ by class.

    low: detections below it are not given to the tracker.
    high: ByteTrack's first association takes detections at or above it (``high_conf_det_threshold``).
    new: a track starts from an unmatched detection at or above it (``track_activation_threshold``).
    match_thr: the IoU a detection needs with a track's predicted box (``minimum_iou_threshold``).
    buffer: frames (at 30 fps) a lost track is kept for (``lost_track_buffer``).
    """

    tracker: str = "bytetrack"
    low: tuple[float, ...] = (0.1,)
    high: tuple[float, ...] = (_FALLBACK_HIGH,)
    new: tuple[float, ...] = (_FALLBACK_HIGH,)
    match_thr: float = 0.1
    buffer: int = 30
    min_frames: int = 2

    @classmethod
    def for_detector(
        cls,
        detector: Any,
        *,
        tracker: str = "bytetrack",
        low: Optional[float] = None,
        high: Optional[float] = None,
        match_thr: Optional[float] = None,
        buffer: Optional[int] = None,
    ) -> "TrackSettings":
        """Defaults derived from ``detector.score_thresholds`` (see the module doc); a number given
        for ``low`` / ``high`` replaces the per-class values for every class. Logs what is used."""
        if tracker not in TRACKERS:
            raise ValueError(f"`tracker` must be one of {TRACKERS}, got {tracker!r}")
        names = list(detector.class_names)
        stored = getattr(detector, "score_thresholds", None)
        if stored:
            per_class = tuple(round(t, 4) for t in thresholds_per_label(stored, names))
            source = f"the model's F1-optimal thresholds{' (' + stored['source'] + ')' if stored.get('source') else ''}"
        else:
            per_class = (_FALLBACK_HIGH,) * len(names)
            source = "a fixed 0.3: this model stores no thresholds (choose them with eval --save-thresholds)"
            if high is None:
                log.warning("tracking thresholds: %s", source)
        highs = (float(high),) * len(names) if high is not None else per_class
        lows = (float(low),) * len(names) if low is not None else tuple(round(h * _LOW_RATIO, 4) for h in highs)
        if any(lo > hi for lo, hi in zip(lows, highs)):
            raise ValueError(f"`track_thr` ({min(lows)}) must not exceed the high threshold ({max(highs)})")
        settings = cls(tracker, lows, highs, highs, cls.match_thr if match_thr is None else float(match_thr))
        settings = replace(settings, buffer=cls.buffer if buffer is None else int(buffer))
        log.info("tracking with %s; high thresholds from %s", tracker, "the flags" if high is not None else source)
        log.info("tracking thresholds: %s", settings.describe(names))
        return settings

    def describe(self, class_names: Sequence[str]) -> str:
        """One line: per class low/high, then the match IoU and the buffer."""
        parts = [f"{n} {self._of(self.low, i):.3f}/{self._of(self.high, i):.3f}" for i, n in enumerate(class_names)]
        return f"low/high per class: {', '.join(parts)}; match IoU >= {self.match_thr}, buffer {self.buffer} frames"

    @staticmethod
    def _of(values: tuple[float, ...], label: int) -> float:
        return values[label] if len(values) > label else values[-1]


class Tracker:
    """Track ids for the detections of consecutive frames (any source).

    ``update(det, time)`` takes one frame's detections (``boxes`` (k, 4) xyxy, ``scores`` (k,),
    ``labels`` (k,), tensors or arrays) and its time in seconds, and returns those in a confirmed
    track: the same dict keys, rows in the input's order, plus ``track_ids`` (m,) int64, each > 0.
    """

    def __init__(self, settings: TrackSettings, num_classes: int, frame_rate: float) -> None:
        require("supervision", "supervision")
        trackers = require("trackers", "trackers")
        self.settings, self.num_classes = settings, num_classes
        self.frame_rate = frame_rate if frame_rate and frame_rate > 0 else 30.0
        self._make = {"bytetrack": trackers.ByteTrackTracker, "sort": trackers.SORTTracker}.get(
            settings.tracker, trackers.OCSORTTracker
        )
        self._per_class: dict[int, Any] = {}
        self._ids: dict[tuple[int, int], int] = {}

    def _tracker(self, label: int):
        if label not in self._per_class:
            s, of = self.settings, TrackSettings._of
            kwargs = dict(
                lost_track_buffer=s.buffer,
                frame_rate=self.frame_rate,
                minimum_consecutive_frames=s.min_frames,
                minimum_iou_threshold=s.match_thr,
            )
            if s.tracker != "ocsort":
                kwargs["track_activation_threshold"] = of(s.new, label)
            if s.tracker != "sort":
                kwargs["high_conf_det_threshold"] = of(s.high, label)
            self._per_class[label] = self._make(**kwargs)
        return self._per_class[label]

    def update(self, det: dict[str, Any], time: float) -> dict[str, Tensor]:
        sv = require("supervision", "supervision")
        det = {k: torch.as_tensor(v).cpu() for k, v in det.items()}
        labels = det["labels"].long()
        keep_rows: list[int] = []
        ids: list[int] = []
        for label in range(self.num_classes):
            low = TrackSettings._of(self.settings.low, label)
            rows = torch.nonzero((labels == label) & (det["scores"] >= low)).flatten().numpy()
            tracker = self._tracker(label)
            given = sv.Detections(
                xyxy=det["boxes"][rows].double().numpy().reshape(-1, 4),
                confidence=det["scores"][rows].double().numpy(),
                class_id=np.full(len(rows), label),
                data={"row": rows},
            )
            out = tracker.update(given, timestamp=float(time))
            for row, local in zip(np.asarray(out.data.get("row", []), dtype=int), out.tracker_id):
                if local >= 0:  # trackers numbers tracks from 0; -1: not (yet) in a confirmed track
                    key = (label, int(local))
                    if key not in self._ids:
                        self._ids[key] = len(self._ids) + 1
                    keep_rows.append(int(row))
                    ids.append(self._ids[key])
        order = np.argsort(keep_rows, kind="stable")
        index = torch.as_tensor(np.asarray(keep_rows, dtype=np.int64)[order])
        tracked = {k: v[index] for k, v in det.items()}
        tracked["track_ids"] = torch.as_tensor(np.asarray(ids, dtype=np.int64)[order])
        return tracked
