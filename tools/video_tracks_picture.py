"""docs/video_tracks.png: a strip of frames of a generated clip with tracked shapes (ids, trails).

With --weights the detections are the model's (``sparse_rcnn.video.iter_video`` with tracking, as
``predict --track``); without, the tracker is given the clip's ground-truth boxes (score 0.9), which
shows the drawing and the tracker alone, not a detector.

    python tools/video_tracks_picture.py [--weights demo/model_final.pth] [--seed 3] [--out docs/video_tracks.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sparse_rcnn.data import ClipSpec, render_clip
from sparse_rcnn.data.synthetic import CLASSES
from sparse_rcnn.video import FrameDrawer, FrameReader, Tracker, TrackSettings, frame_strip, iter_video, make_clip
from sparse_rcnn.video.draw import as_tensor


def ground_truth_frames(spec: ClipSpec):
    """(frame, detections with track ids) from the tracker given the ground-truth boxes (no duplicates:
    no NMS; one tracker per class numbers the ids as in the picture in docs/)."""
    settings = TrackSettings(high=(0.5,), new=(0.5,), low=(0.1,), nms=0.0, per_class=True)
    tracker = Tracker(settings, len(CLASSES), spec.fps)
    for index, (frame, objects) in enumerate(render_clip(spec)):
        det = {
            "boxes": np.array([[x, y, x + w, y + h] for x, y, w, h in (o.box for o in objects)], float).reshape(-1, 4),
            "scores": np.full(len(objects), 0.9),
            "labels": np.array([o.label for o in objects], dtype=np.int64),
        }
        yield frame, tracker.update(det, index / spec.fps)


def model_frames(spec: ClipSpec, weights: str):
    from sparse_rcnn.models import load_model

    model = load_model(weights=weights)
    with tempfile.TemporaryDirectory() as tmp:
        make_clip(Path(tmp) / "clip.mkv", spec, lossless=True)
        settings = TrackSettings.for_detector(model)
        for pred in iter_video(model, FrameReader(Path(tmp) / "clip.mkv"), track=settings, keep_images=True):
            yield pred.image.permute(1, 2, 0).numpy(), pred.detections


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--frames", default="10,24,38,52", help="frame numbers to show")
    p.add_argument("--out", default="docs/video_tracks.png")
    args = p.parse_args()
    spec = ClipSpec(num_frames=60, seed=args.seed)
    shown = {int(f) for f in args.frames.split(",")}
    drawer = FrameDrawer(CLASSES, trail=20, short=True, zoom=2)
    frames = ground_truth_frames(spec) if not args.weights else model_frames(spec, args.weights)
    picked = []
    for index, (frame, det) in enumerate(frames):
        drawn = drawer.draw(as_tensor(frame), {k: torch.as_tensor(v) for k, v in det.items()})
        if index in shown:
            picked.append(drawn)
    strip = Image.fromarray(frame_strip(picked, height=2 * spec.height))
    strip.quantize(colors=96).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
