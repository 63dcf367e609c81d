"""Training augmentation (paper Sec. 4 "Training details"; MMDetection's train pipelines).

Three pipelines, each a function of (image, boxes, labels, rng) so that a sample's augmentation
depends only on the generator the dataset seeds with (seed, epoch, index):

* ``1x``: keep-ratio resize to fit 1333x800, then horizontal flip with probability 0.5;
* ``multiscale``: keep-ratio resize with the short side drawn uniformly from 480, 512, ..., 800
  (long side <= 1333), then flip;
* ``crop`` (the DETR recipe): flip, then with equal chance either the multi-scale resize, or
  [resize the short side to 400/500/600 -> random crop of h, w each uniform in [384, 600] (capped
  by the image) -> multi-scale resize].

Numerics follow MMDetection 3.3: sizes from ``preprocess.rescale_size`` and OpenCV bilinear resize
(``preprocess.resize_array``); boxes are multiplied by the float32 per-axis scale factor and
clipped to the new image (``Resize(clip_object_border=True)``); a flip maps x1' = W - x2,
x2' = W - x1; a crop translates boxes, clips them to the crop and drops the ones left empty
(``RandomCrop(crop_type="absolute_range", allow_negative_crop=True)``).
"""

from __future__ import annotations

from typing import Sequence, cast

import numpy as np

from ..config import ConfigError
from .resize import rescale_size, resize_array

PIPELINES = ("1x", "multiscale", "crop")

# One sample on its way through the pipeline: image (H, W, 3) uint8, boxes (n, 4) float32 xyxy,
# labels (n,) int64, accumulated per-axis scale factor (sx, sy).
Sample = tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]


class RandomResize:
    """Keep-ratio resize to one (long max, short max) scale drawn uniformly from ``scales``
    (MMDetection ``RandomChoiceResize``; with one scale it is the plain ``Resize``)."""

    def __init__(self, scales: Sequence[tuple[int, int]]) -> None:
        self.scales = [cast("tuple[int, int]", tuple(s)) for s in scales]  # lists from a config too

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image, boxes, labels, (fx, fy) = sample
        scale = self.scales[int(rng.integers(len(self.scales)))] if len(self.scales) > 1 else self.scales[0]
        h, w = image.shape[:2]
        new_w, new_h = rescale_size(w, h, scale)
        image = resize_array(image, (new_w, new_h))
        sx, sy = new_w / w, new_h / h
        boxes = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
        boxes = clip_boxes(boxes, new_h, new_w)
        return image, boxes, labels, (fx * sx, fy * sy)


class RandomFlip:
    """Horizontal flip with probability ``prob``."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image, boxes, labels, factor = sample
        if rng.random() >= self.prob:
            return sample
        w = image.shape[1]
        flipped = boxes.copy()
        flipped[:, 0] = w - boxes[:, 2]
        flipped[:, 2] = w - boxes[:, 0]
        return image[:, ::-1], flipped, labels, factor


class RandomCrop:
    """Crop of height and width each uniform in [min(side, lo), min(side, hi)] at a uniform offset;
    boxes are clipped to the crop and those left without area are dropped."""

    def __init__(self, size_range: tuple[int, int] = (384, 600)) -> None:
        self.lo, self.hi = size_range

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image, boxes, labels, factor = sample
        h, w = image.shape[:2]
        crop_h = int(rng.integers(min(h, self.lo), min(h, self.hi) + 1))
        crop_w = int(rng.integers(min(w, self.lo), min(w, self.hi) + 1))
        y0 = int(rng.integers(0, max(h - crop_h, 0) + 1))
        x0 = int(rng.integers(0, max(w - crop_w, 0) + 1))
        image = image[y0 : y0 + crop_h, x0 : x0 + crop_w]
        crop_h, crop_w = image.shape[:2]
        boxes = clip_boxes(boxes - np.array([x0, y0, x0, y0], dtype=np.float32), crop_h, crop_w)
        # MMDetection's HorizontalBoxes.is_inside after clipping: keeps boxes with area in the crop.
        keep = (boxes[:, 0] < crop_w) & (boxes[:, 1] < crop_h) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        return image, boxes[keep], labels[keep], factor


class RandomChoice:
    """Apply one of ``options`` (each a list of steps), chosen uniformly."""

    def __init__(self, options: Sequence[Sequence]) -> None:
        self.options = [list(o) for o in options]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for step in self.options[int(rng.integers(len(self.options)))]:
            sample = step(sample, rng)
        return sample


class TrainTransform:
    """The steps of one pipeline, applied in order. Call with (image (H, W, 3) uint8 RGB, boxes
    (n, 4) float32 xyxy, labels (n,) int64, rng); returns the same plus the overall per-axis
    scale factor (product of the resizes; crops do not count)."""

    def __init__(self, steps: Sequence) -> None:
        self.steps = list(steps)

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> Sample:
        sample: Sample = (
            image,
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64),
            (1.0, 1.0),
        )
        for step in self.steps:
            sample = step(sample, rng)
        image, boxes, labels, factor = sample
        return np.ascontiguousarray(image), boxes, labels, factor


def clip_boxes(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """(n, 4) xyxy clipped to [0, w] x [0, h]."""
    out = boxes.copy()
    out[:, 0::2] = out[:, 0::2].clip(0, w)
    out[:, 1::2] = out[:, 1::2].clip(0, h)
    return out


def build_train_transform(
    *,
    pipeline: str,
    train_scale: tuple[int, int] = (1333, 800),
    ms_short_sides: Sequence[int] = tuple(range(480, 801, 32)),
    crop_short_sides: Sequence[int] = (400, 500, 600),
    crop_size: tuple[int, int] = (384, 600),
    flip_prob: float = 0.5,
) -> TrainTransform:
    """The named training pipeline (``1x``, ``multiscale`` or ``crop``), see the module docstring.

    ``train_scale`` is (long max, short max) for ``1x``; the multi-scale and crop pipelines keep
    its long side as the limit and draw the short side from ``ms_short_sides`` /
    ``crop_short_sides``. ``crop_size`` is the (min, max) crop side.
    """
    long_max = max(train_scale)
    multiscale = RandomResize([(long_max, s) for s in ms_short_sides])
    if pipeline == "1x":
        return TrainTransform([RandomResize([cast("tuple[int, int]", tuple(train_scale))]), RandomFlip(flip_prob)])
    if pipeline == "multiscale":
        return TrainTransform([multiscale, RandomFlip(flip_prob)])
    if pipeline == "crop":
        crop = [
            RandomResize([(long_max, s) for s in crop_short_sides]),
            RandomCrop(cast("tuple[int, int]", tuple(crop_size))),
            multiscale,
        ]
        return TrainTransform([RandomFlip(flip_prob), RandomChoice([[multiscale], crop])])
    raise ConfigError(f"unknown data.pipeline {pipeline!r}; choose one of {', '.join(PIPELINES)}")
