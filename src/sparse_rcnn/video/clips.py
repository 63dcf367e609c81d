"""Generated clips written to disk: the moving shapes of ``data.render_clip`` as a video file and
their tracks as MOTChallenge ground truth (``frame,id,x,y,w,h,1,1,1``, 1-based frames)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..common import atomic_write
from ..data import ClipSpec, render_clip
from .mot import write_ground_truth
from .writer import VideoWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipFiles:
    """What ``make_clip`` wrote: the ``video``, the ground truth ``gt`` (or None), the number of
    ``frames``, ``tracks`` and ground-truth ``boxes``."""

    video: Path
    gt: Optional[Path]
    frames: int
    tracks: int
    boxes: int


def make_clip(
    path: Union[str, Path],
    spec: Optional[ClipSpec] = None,
    *,
    gt: Union[str, Path, None] = None,
    lossless: bool = False,
) -> ClipFiles:
    """Write the clip of ``spec`` to ``path`` (``.mp4``, ``.mkv``, ``.avi``; ``lossless`` for exact
    pixels) and its ground-truth tracks to ``gt`` (MOTChallenge text)."""
    spec = spec or ClipSpec()
    rows = []
    with VideoWriter(path, spec.width, spec.height, spec.fps, lossless=lossless) as writer:
        for index, (frame, objects) in enumerate(render_clip(spec)):
            writer.write(frame)
            rows += [(index, o.track_id, o.box) for o in objects]
    if gt is not None:
        with atomic_write(gt) as target:
            write_ground_truth(target.file, rows)
    tracks = len({r[1] for r in rows})
    log.info("clip %s: %d frames, %d tracks, %d boxes", path, spec.num_frames, tracks, len(rows))
    return ClipFiles(Path(path), Path(gt) if gt is not None else None, spec.num_frames, tracks, len(rows))
