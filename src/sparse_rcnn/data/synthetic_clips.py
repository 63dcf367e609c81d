"""Generated clips of moving shapes with ground-truth tracks: the demo's video data.

The shapes and backgrounds are the still demo's (``synthetic``). Each object moves at a constant
velocity and bounces off the frame's edges, except the ones that leave: those pass an edge and are
gone. Objects are drawn in a fixed depth order, so crossings occlude (the first two objects start on
opposite sides moving towards each other, so every clip has at least one crossing). Each frame
has its own pixel noise over a fixed background.

Ground truth per frame is the box of an object's *visible* pixels (inside the frame, not hidden by
a shape in front), listed while at least ``min_visible`` of the object's pixels show; ids are
1-based and stable. ``render_clip`` yields the frames; ``video.make_clip`` writes them as a video
and the tracks as MOTChallenge ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .synthetic import CLASSES, _background, _paint, _shape_mask


@dataclass(frozen=True)
class ClipSpec:
    """What to generate. Sizes in pixels, ``speed`` in pixels per frame."""

    num_frames: int = 100
    width: int = 160
    height: int = 120
    num_objects: int = 5
    min_size: int = 16  # longest side of a shape before rotation
    max_size: int = 36
    min_speed: float = 0.6
    max_speed: float = 2.4
    leave_fraction: float = 0.3  # share of objects (after the first two) that leave instead of bouncing
    min_visible: float = 0.25  # an object is in the ground truth while this share of it shows
    noise: float = 4.0  # per-frame pixel noise (standard deviation)
    fps: float = 25.0
    seed: int = 0
    classes: tuple[str, ...] = CLASSES


@dataclass(frozen=True)
class ClipObject:
    """One object in one frame: its ``track_id`` (1-based), class ``label``, visible ``box``
    [x, y, w, h] and the ``visible`` share of its pixels."""

    track_id: int
    label: int
    box: tuple[int, int, int, int]
    visible: float


class _Sprite:
    def __init__(self, rng: np.random.Generator, label: int, spec: ClipSpec, pos, vel, leaves: bool) -> None:
        s = 2 * spec.max_size
        mask = _shape_mask(rng, spec.classes[label], s, spec.min_size, spec.max_size)
        while mask.sum() < 16:
            mask = _shape_mask(rng, spec.classes[label], s, spec.min_size, spec.max_size)
        ys, xs = np.nonzero(mask)
        self.mask = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        self.pixels = _paint(rng, np.zeros((int(self.mask.sum()), 3), np.uint8))
        self.label, self.leaves = label, leaves
        self.pos, self.vel = np.asarray(pos, float), np.asarray(vel, float)

    def step(self, width: int, height: int) -> None:
        self.pos += self.vel
        if self.leaves:
            return
        h, w = self.mask.shape
        for axis, limit in ((0, width - w), (1, height - h)):
            if self.pos[axis] < 0 or self.pos[axis] > limit:
                self.vel[axis] = -self.vel[axis]
                self.pos[axis] = min(max(self.pos[axis], 0), limit)


def _sprites(rng: np.random.Generator, spec: ClipSpec) -> list[_Sprite]:
    sprites = []
    for k in range(spec.num_objects):
        label = int(rng.integers(len(spec.classes)))
        speed = rng.uniform(spec.min_speed, spec.max_speed)
        if k < 2:  # the crossing pair: opposite sides, one height band, towards each other
            y = spec.height * rng.uniform(0.35, 0.5)
            x = 0.0 if k == 0 else spec.width - spec.max_size
            pos, vel = (x, y), (speed if k == 0 else -speed, rng.uniform(-0.2, 0.2))
            sprites.append(_Sprite(rng, label, spec, pos, vel, leaves=False))
            continue
        angle = rng.uniform(0, 2 * np.pi)
        pos = (rng.uniform(0, spec.width - spec.max_size), rng.uniform(0, spec.height - spec.max_size))
        leaves = bool(rng.random() < spec.leave_fraction)
        sprites.append(_Sprite(rng, label, spec, pos, (speed * np.cos(angle), speed * np.sin(angle)), leaves))
    return sprites


def render_clip(spec: ClipSpec = ClipSpec()) -> Iterator[tuple[np.ndarray, list[ClipObject]]]:
    """The clip's frames in order: ((H, W, 3) uint8 RGB frame, its visible objects)."""
    rng = np.random.default_rng([spec.seed, 7])
    side = max(spec.width, spec.height)
    background = _background(rng, side)[: spec.height, : spec.width].astype(np.float32)
    sprites = _sprites(rng, spec)
    for _ in range(spec.num_frames):
        frame = background + rng.normal(0, spec.noise, size=(spec.height, spec.width, 1))
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        owner = np.full((spec.height, spec.width), -1, dtype=np.int16)
        for k, sprite in enumerate(sprites):  # later sprites in front
            x, y = (int(round(v)) for v in sprite.pos)
            h, w = sprite.mask.shape
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, spec.width), min(y + h, spec.height)
            if x0 >= x1 or y0 >= y1:
                continue
            sub = sprite.mask[y0 - y : y1 - y, x0 - x : x1 - x]
            colours = np.zeros((h, w, 3), np.uint8)
            colours[sprite.mask] = sprite.pixels
            region = frame[y0:y1, x0:x1]
            region[sub] = colours[y0 - y : y1 - y, x0 - x : x1 - x][sub]
            owner[y0:y1, x0:x1][sub] = k
        objects = []
        for k, sprite in enumerate(sprites):
            ys, xs = np.nonzero(owner == k)
            visible = len(xs) / float(sprite.mask.sum())
            if len(xs) and visible >= spec.min_visible:
                box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
                objects.append(ClipObject(k + 1, sprite.label, box, round(visible, 4)))
        yield frame, objects
        for sprite in sprites:
            sprite.step(spec.width, spec.height)
