"""Sliced inference: a detector run on overlapping tiles of the original image (and on the whole
image), the detections shifted back and merged, as SAHI's ``get_sliced_prediction``.

Windows (``tile_windows``) follow SAHI's ``get_slice_bboxes`` exactly: row by row, tiles of
``tile=(W, H)`` original pixels step by ``W - int(overlap * W)`` (and H); the last tile of a row or
column is moved back to end at the image's edge; an image smaller than a tile is one window.

Each tile is then resized to the detector's test scale like any image, keeping its aspect ratio,
so a tile smaller than the test scale is **upscaled** (which is what helps small objects: they
cover more of the model's input) and a bigger one downscaled. ``with_full`` (default) also runs
the whole image at the test scale, which finds the objects larger than a tile; it is skipped when
the image is a single window. Boxes of a tile that end within ``cut_margin`` pixels of one of its
inner edges (an edge inside the image) are cut by the tile: ``cut="drop"`` (default) drops them
(the object is whole in a neighbouring tile when it fits in the overlap, else in the full-image
pass), ``cut="keep"`` keeps them for the merge (``merge="nmm", match="ios"`` joins the parts, as
SAHI's default). The detections of all views are merged (``merge.merge_detections``) and the best
``max_detections`` kept; its default is the most any single view returned (the model's per-image
count, 100 for a 100-proposal model), so set it higher to report more objects than proposals.

How it enters the one inference loop: ``TiledDetector`` is a ``Detector`` whose ``test_scale`` is
None, so the sources hand it the decoded original unresized (factor (1, 1)) and
``detect_resized`` receives originals; it tiles and resizes inside. ``predict_files`` and
``evaluation.detect_dataset`` take it as any detector, and it wraps any detector (PyTorch,
``deploy.OnnxDetector`` / ``OpenVINODetector``, a ``TTADetector``). ``predict_tiled`` is the
in-memory entry point (``models.detector.predict`` cannot import this layer).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from torch import Tensor

from ..models.detector import Detector, ScoreThr
from .merge import check_merge, concat_detections, merge_views
from .views import OriginalsDetector, detect_views, predict_one

log = logging.getLogger(__name__)
CUT_MODES = ("drop", "keep")
Window = tuple[int, int, int, int]  # x1, y1, x2, y2 in original pixels


def tile_windows(width: int, height: int, tile: tuple[int, int], overlap: float = 0.2) -> list[Window]:
    """The tiles of a ``width`` x ``height`` image, row by row, as SAHI's ``get_slice_bboxes``."""
    tw, th = int(tile[0]), int(tile[1])
    if tw < 1 or th < 1:
        raise ValueError(f"`tile` must be two positive sizes (W, H), got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"`overlap` must be within [0, 1), got {overlap}")
    xs = _starts(width, tw, int(overlap * tw))
    ys = _starts(height, th, int(overlap * th))
    return [(x, y, min(x + tw, width), min(y + th, height)) for y in ys for x in xs]


def _starts(size: int, length: int, overlap_px: int) -> list[int]:
    starts, x = [], 0
    while True:
        end = x + length
        if end >= size:
            starts.append(max(0, size - length))
            return starts
        starts.append(x)
        x = end - overlap_px


class TiledDetector(OriginalsDetector):
    """``detector`` run on tiles of each original image (see the module docstring); a ``Detector``
    over originals (``test_scale`` None). ``batch_size``: tiles per forward."""

    def __init__(
        self,
        detector: Detector,
        tile: tuple[int, int] = (1024, 1024),
        *,
        overlap: float = 0.2,
        with_full: bool = True,
        merge: str = "nms",
        iou_thr: float = 0.5,
        match: str = "iou",
        max_detections: Optional[int] = None,
        cut: str = "drop",
        cut_margin: float = 2.0,
        batch_size: int = 8,
    ) -> None:
        tile_windows(1, 1, tile, overlap)  # checks `tile` and `overlap`
        check_merge(merge, iou_thr, match)
        if cut not in CUT_MODES:
            raise ValueError(f"`cut` must be one of {CUT_MODES}, got {cut!r}")
        if max_detections is not None and max_detections < 1:
            raise ValueError(f"`max_detections` must be >= 1, got {max_detections}")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
        super().__init__(detector)
        self.tile, self.overlap, self.with_full = (int(tile[0]), int(tile[1])), overlap, with_full
        self.merge, self.iou_thr, self.match, self.max_detections = merge, iou_thr, match, max_detections
        self.cut, self.cut_margin, self.batch_size = cut, cut_margin, batch_size

    def detect_original(self, image: Tensor) -> dict[str, Tensor]:
        """One original (3, H, W) uint8 image -> its merged detections (CPU tensors)."""
        h, w = int(image.shape[-2]), int(image.shape[-1])
        windows = tile_windows(w, h, self.tile, self.overlap)
        crops = [image[:, y1:y2, x1:x2] for x1, y1, x2, y2 in windows]
        full = self.with_full and len(windows) > 1
        dets = detect_views(self.detector, crops + ([image] if full else []), batch_size=self.batch_size)
        shifted = [self._shift(det, window, w, h) for det, window in zip(dets, windows)]
        views = shifted + ([concat_detections(dets[-1:])] if full else [])
        limit = self.max_detections if self.max_detections is not None else max(len(d["scores"]) for d in dets)
        return merge_views(views, merge=self.merge, iou_thr=self.iou_thr, match=self.match, max_detections=limit)

    def _shift(self, det: dict[str, Any], window: Window, width: int, height: int) -> dict[str, Tensor]:
        det = concat_detections([det])
        x1, y1, x2, y2 = window
        boxes = det["boxes"]
        if self.cut == "drop" and len(boxes):
            m = self.cut_margin
            cut = torch.zeros(len(boxes), dtype=torch.bool)
            if x1 > 0:
                cut |= boxes[:, 0] <= m
            if y1 > 0:
                cut |= boxes[:, 1] <= m
            if x2 < width:
                cut |= boxes[:, 2] >= (x2 - x1) - m
            if y2 < height:
                cut |= boxes[:, 3] >= (y2 - y1) - m
            det = {k: v[~cut] for k, v in det.items()}
        det["boxes"] = det["boxes"] + torch.tensor([x1, y1, x1, y1], dtype=det["boxes"].dtype)
        return det


def predict_tiled(
    detector: Detector,
    image: Any,
    tile: tuple[int, int] = (1024, 1024),
    *,
    score_thr: ScoreThr = 0.0,
    **options: Any,
) -> dict[str, Any]:
    """Sliced prediction on one image (a path, PIL image, array, tensor) -> ``boxes`` (k, 4) in its
    pixels, ``scores``, ``labels``, ``categories``, as ``models.detector.predict``. ``options``:
    those of ``TiledDetector`` (overlap, with_full, merge, iou_thr, match, max_detections, cut, ...).
    A PyTorch model is put in eval mode for the call."""
    return predict_one(TiledDetector(detector, tile, **options), detector, image, score_thr)
