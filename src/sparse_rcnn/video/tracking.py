"""Tracking by detection: a small adapter over Roboflow's ``trackers`` package (ByteTrack by
default) that takes the detections of any source, frame by frame, and gives each a track id.

Before the tracker, boxes below their class's low threshold are dropped, and NMS (``nms``, IoU 0.5
by default; class-agnostic, or class-wise with ``per_class``) drops the duplicates Sparse R-CNN
leaves (it has no NMS of its own), which would otherwise become extra tracks. By default one
tracker follows all classes, since the model's class for one object can flicker between frames;
it sees each score divided by its class's high threshold (capped), so each class keeps its own
thresholds. ``per_class`` runs one tracker per class instead, and a track keeps one class. Ids
are numbered 1, 2, ... in the order tracks are confirmed.

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
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import batched_nms

from ..models.detector import thresholds_per_label
from .reader import require

log = logging.getLogger(__name__)
TRACKERS = ("bytetrack", "sort", "ocsort")
_FALLBACK_HIGH = 0.3
_LOW_RATIO = 1 / 3
DEFAULT_NMS = 0.5


@dataclass(frozen=True)
class TrackSettings:
    """The tracker and its thresholds, one per class (label order) where they differ by class.

    low: detections below it are not given to the tracker.
    high: ByteTrack's first association takes detections at or above it (``high_conf_det_threshold``).
    new: a track starts from an unmatched detection at or above it (``track_activation_threshold``).
    match_thr: the IoU a detection needs with a track's predicted box (``minimum_iou_threshold``).
    buffer: frames (at 30 fps) a lost track is kept for (``lost_track_buffer``).
    nms: a box whose IoU with a better-scored one is above it is dropped before tracking (0: no NMS);
    class-agnostic, or class-wise with ``per_class``.
    per_class: one tracker per class (a track keeps one class) instead of one for all classes.
    """

    tracker: str = "bytetrack"
    low: tuple[float, ...] = (0.1,)
    high: tuple[float, ...] = (_FALLBACK_HIGH,)
    new: tuple[float, ...] = (_FALLBACK_HIGH,)
    match_thr: float = 0.1
    buffer: int = 30
    min_frames: int = 2
    nms: float = DEFAULT_NMS
    per_class: bool = False

    def __post_init__(self) -> None:
        if self.tracker not in TRACKERS:
            raise ValueError(f"`tracker` must be one of {TRACKERS}, got {self.tracker!r}")
        if not 0.0 <= self.nms <= 1.0:
            raise ValueError(f"`nms` must be an IoU within [0, 1] (0: off), got {self.nms}")
        if min(self.high) <= 0:
            raise ValueError(f"the high thresholds must be above 0, got {min(self.high)}")
        if not self.per_class and len({round(n / h, 6) for n, h in zip(self.new, self.high)}) > 1:
            raise ValueError("one tracker for all classes needs the same `new` / `high` ratio in every class")

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
        nms: Optional[float] = None,
        per_class: bool = False,
    ) -> "TrackSettings":
        """Defaults derived from ``detector.score_thresholds`` (see the module doc); a number given
        for ``low`` / ``high`` replaces the per-class values for every class. Logs what is used."""
        if tracker not in TRACKERS:
            raise ValueError(f"`tracker` must be one of {TRACKERS}, got {tracker!r}")
        if nms is not None and not 0.0 <= nms <= 1.0:
            raise ValueError(f"`track_nms` must be an IoU within [0, 1] (0: no NMS), got {nms}")
        if high is not None and not high > 0:
            raise ValueError(f"`track_high_thr` must be above 0, got {high}")
        names = list(detector.class_names)
        stored = getattr(detector, "score_thresholds", None)
        if stored:
            per_label = tuple(round(t, 4) for t in thresholds_per_label(stored, names))
            source = f"the model's F1-optimal thresholds{' (' + stored['source'] + ')' if stored.get('source') else ''}"
        else:
            per_label = (_FALLBACK_HIGH,) * len(names)
            source = "a fixed 0.3: this model stores no thresholds (choose them with eval --save-thresholds)"
            if high is None:
                log.warning("tracking thresholds: %s", source)
        highs = (float(high),) * len(names) if high is not None else per_label
        lows = (float(low),) * len(names) if low is not None else tuple(round(h * _LOW_RATIO, 4) for h in highs)
        if any(lo > hi for lo, hi in zip(lows, highs)):
            raise ValueError(f"`track_thr` ({min(lows)}) must not exceed the high threshold ({max(highs)})")
        settings = cls(
            tracker,
            lows,
            highs,
            highs,
            cls.match_thr if match_thr is None else float(match_thr),
            cls.buffer if buffer is None else int(buffer),
            nms=cls.nms if nms is None else float(nms),
            per_class=per_class,
        )
        log.info("tracking with %s; high thresholds from %s", tracker, "the flags" if high is not None else source)
        log.info("tracking thresholds: %s", settings.describe(names))
        return settings

    def describe(self, class_names: Sequence[str]) -> str:
        """One line: per class low/high, then the match IoU, the buffer, NMS and the classes' trackers."""
        parts = [f"{n} {self._of(self.low, i):.3f}/{self._of(self.high, i):.3f}" for i, n in enumerate(class_names)]
        nms = f"NMS IoU {self.nms} ({'class-wise' if self.per_class else 'class-agnostic'})" if self.nms else "no NMS"
        trackers = "one tracker per class" if self.per_class else "one tracker for all classes"
        return (
            f"low/high per class: {', '.join(parts)}; match IoU >= {self.match_thr}, buffer {self.buffer} frames; "
            f"{nms}; {trackers}"
        )

    @staticmethod
    def _of(values: tuple[float, ...], label: int) -> float:
        return values[label] if len(values) > label else values[-1]


class Tracker:
    """Track ids for the detections of consecutive frames (any source).

    ``update(det, time)`` takes one frame's detections (``boxes`` (k, 4) xyxy, ``scores`` (k,),
    ``labels`` (k,), tensors or arrays) and its time in seconds, and returns those in a confirmed
    track: the same dict keys, rows in the input's order, plus ``track_ids`` (m,) int64, each > 0.
    Detections below their class's ``low`` and those NMS drops are never in a track.
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
        of = TrackSettings._of
        self._low = torch.tensor([of(settings.low, c) for c in range(num_classes)], dtype=torch.float64)
        self._high = torch.tensor([of(settings.high, c) for c in range(num_classes)], dtype=torch.float64)
        # one tracker for all classes: scores / the class's high threshold, so 1 is every class's high
        self._new_ratio = of(settings.new, 0) / of(settings.high, 0)

    def _tracker(self, key: int):
        if key not in self._per_class:
            s, of = self.settings, TrackSettings._of
            kwargs = dict(
                lost_track_buffer=s.buffer,
                frame_rate=self.frame_rate,
                minimum_consecutive_frames=s.min_frames,
                minimum_iou_threshold=s.match_thr,
            )
            high, new = (of(s.high, key), of(s.new, key)) if s.per_class else (1.0, self._new_ratio)
            if s.tracker != "ocsort":
                kwargs["track_activation_threshold"] = new
            if s.tracker != "sort":
                kwargs["high_conf_det_threshold"] = high
            self._per_class[key] = self._make(**kwargs)
        return self._per_class[key]

    def candidates(self, det: dict[str, Tensor]) -> Tensor:
        """Rows (ascending) given to the tracker: at or above their class's ``low``, kept by NMS."""
        labels, scores = det["labels"].long(), det["scores"].double()
        known = (labels >= 0) & (labels < self.num_classes)
        rows = torch.nonzero(known & (scores >= self._low[labels.clamp(0, self.num_classes - 1)])).flatten()
        if self.settings.nms > 0 and len(rows) > 1:
            groups = labels[rows] if self.settings.per_class else torch.zeros_like(rows)
            keep = batched_nms(det["boxes"][rows].float(), scores[rows].float(), groups, self.settings.nms)
            rows = rows[keep].sort().values
        return rows

    def update(self, det: dict[str, Any], time: float) -> dict[str, Tensor]:
        sv = require("supervision", "supervision")
        det = {k: torch.as_tensor(v).cpu() for k, v in det.items()}
        rows = self.candidates(det)
        labels, scores = det["labels"][rows].long(), det["scores"][rows].double()
        if self.settings.per_class:
            groups = [(label, rows[labels == label], scores[labels == label]) for label in range(self.num_classes)]
        else:
            ceiling = max(1.0, self._new_ratio)
            groups = [(0, rows, (scores / self._high[labels]).clamp(max=ceiling))]
        keep_rows: list[int] = []
        ids: list[int] = []
        for key, part, confidence in groups:
            given = sv.Detections(
                xyxy=det["boxes"][part].double().numpy().reshape(-1, 4),
                confidence=confidence.numpy(),
                class_id=det["labels"][part].long().numpy(),
                data={"row": part.numpy()},
            )
            out = self._tracker(key).update(given, timestamp=float(time))
            for row, local in zip(np.asarray(out.data.get("row", []), dtype=int), out.tracker_id):
                if local >= 0:  # trackers numbers tracks from 0; -1: not (yet) in a confirmed track
                    if (key, int(local)) not in self._ids:
                        self._ids[(key, int(local))] = len(self._ids) + 1
                    keep_rows.append(int(row))
                    ids.append(self._ids[(key, int(local))])
        order = np.argsort(keep_rows, kind="stable")
        index = torch.as_tensor(np.asarray(keep_rows, dtype=np.int64)[order])
        tracked = {k: v[index] for k, v in det.items()}
        tracked["track_ids"] = torch.as_tensor(np.asarray(ids, dtype=np.int64)[order])
        return tracked
