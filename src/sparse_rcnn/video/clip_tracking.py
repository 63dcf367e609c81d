"""A detector's tracking, scored on a generated clip: the last step of ``sparse-rcnn demo``.

``track_clip`` writes a clip of moving shapes with its ground truth (``make_clip``), tracks the
detector's boxes over it exactly as ``sparse-rcnn predict CLIP --track --format mot`` does
(``predict_video_file``, thresholds from the model), scores the tracks with
TrackEval (``evaluate_tracks``) and draws a strip of a few tracked frames. All of it goes into one
folder:

    clip.mp4 / clip_gt.txt             the clip (lossless H.264) and its ground-truth tracks (MOTChallenge text)
    clip_tracks.txt                    the tracks (MOTChallenge rows)
    clip_tracks.mp4                    the annotated clip, twice the size: ids, classes, scores, trails
    clip_tracks.png                    a few of its frames side by side, with ids and trails
    clip_scores.json                   HOTA, MOTA, IDF1, ID switches, ... (TrackEval)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..common import atomic_write
from ..data import ClipSpec
from ..models.detector import Detector
from ..visualize import save_png
from .clips import make_clip
from .draw import FrameDrawer, as_tensor, frame_strip
from .files import predict_video_file
from .predict import FramePrediction
from .reader import VideoError
from .track_eval import TrackScores, evaluate_tracks
from .tracking import TrackSettings
from .writer import VideoWriter

log = logging.getLogger(__name__)
CLIP_SEED = 7  # the demo's clip: not a seed of the tests, nor of the clips measured in docs/video.md
CLIP_FRAMES = 150
ZOOM = 2  # the annotated clip is drawn twice the clip's size: captions and trails fit


@dataclass(frozen=True)
class ClipTracking:
    """What ``track_clip`` wrote (paths), the clip's ``spec``, the tracks' ``scores`` and the frames in the strip."""

    spec: ClipSpec
    video: Path
    gt: Path
    tracks: Path
    annotated: Path
    strip: Path
    scores_file: Path
    scores: TrackScores
    strip_frames: tuple[int, ...]

    def summary(self) -> str:
        """One line: HOTA, MOTA, IDF1 and ID switches against the ground truth."""
        s = self.scores.combined
        return (
            f"HOTA {s['HOTA']:.1f}  MOTA {s['MOTA']:.1f}  IDF1 {s['IDF1']:.1f}  ID switches {s['IDSW']} "
            f"({s['IDs']} tracks for {s['GT_IDs']} objects)"
        )


def strip_frames(num_frames: int, count: int = 4) -> list[int]:
    """``count`` frame numbers spread evenly inside a clip of ``num_frames`` (neither end)."""
    return sorted({round(num_frames * (k + 1) / (count + 1)) for k in range(count)})


def track_clip(
    detector: Detector,
    folder: Union[str, Path],
    spec: Optional[ClipSpec] = None,
    *,
    track: Optional[TrackSettings] = None,
    shown: Optional[Sequence[int]] = None,
    zoom: int = ZOOM,
    batch_size: int = 1,
) -> ClipTracking:
    """Generate the clip ``spec`` (default: ``CLIP_FRAMES`` frames of seed ``CLIP_SEED``) in
    ``folder``, track ``detector``'s detections over it (``track``: default the model's thresholds),
    score the tracks, and draw them: the annotated clip ``zoom`` times the clip's size and a strip
    of its frames ``shown`` (default: four spread over the clip).
    Raises ``MissingVideoPackageError`` without the ``video`` extra, ``VideoError`` when the clip
    cannot be written or read back."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = spec or ClipSpec(num_frames=CLIP_FRAMES, seed=CLIP_SEED)
    # lossless: the same pixels, detections and scores on every run (lossy H.264 encodes of one clip
    # were seen to differ from run to run, moving the scores a little)
    clip = make_clip(folder / "clip.mp4", spec, gt=folder / "clip_gt.txt", lossless=True)
    assert clip.gt is not None  # asked for
    settings = track or TrackSettings.for_detector(detector)
    shown = tuple(sorted(shown if shown is not None else strip_frames(spec.num_frames)))
    drawer = FrameDrawer(detector.class_names, trail=20, zoom=zoom)  # id, class and score
    strip_drawer = FrameDrawer(detector.class_names, trail=20, short=True, zoom=zoom)  # ids alone
    picked: list[np.ndarray] = []
    tracks, annotated, picture = folder / "clip_tracks.txt", folder / "clip_tracks.mp4", folder / "clip_tracks.png"
    with VideoWriter(annotated, zoom * spec.width, zoom * spec.height, spec.fps) as writer:

        def draw(pred: FramePrediction) -> None:
            assert pred.image is not None  # on_frame gets the frames' images
            writer.write(drawer.draw(pred.image, pred.detections))
            drawn = strip_drawer.draw(pred.image, pred.detections)  # every frame: the trails
            if pred.record["frame"] in shown:
                picked.append(drawn)

        summary = predict_video_file(
            detector, clip.video, tracks, format="mot", batch_size=batch_size, track=settings, on_frame=draw
        )
        if summary.error:
            raise VideoError(summary.error)
    if picked:
        save_png(as_tensor(frame_strip(picked, height=picked[0].shape[0])), picture)
    else:
        log.warning("no frame of %s is in the clip of %d frames: no %s", list(shown), spec.num_frames, picture)
    scores = evaluate_tracks(clip.gt, tracks)
    with atomic_write(folder / "clip_scores.json") as target:
        json.dump({"combined": scores.combined, "clip": {"seed": spec.seed, "frames": spec.num_frames}}, target.file)
        target.file.write("\n")
    result = ClipTracking(
        spec, clip.video, clip.gt, tracks, annotated, picture, folder / "clip_scores.json", scores, shown
    )
    log.info("tracks on %s: %s", clip.video, result.summary())
    return result
