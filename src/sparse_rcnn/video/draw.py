"""Annotated frames: boxes with class and score, and with tracking the track id, a colour per track
and a short trail of the track's last centres."""

from __future__ import annotations

import functools
from collections import deque
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageColor, ImageDraw, ImageFont
from torch import Tensor

from ..visualize import caption_font, class_color, text_color


class FrameDrawer:
    """Draws consecutive frames; remembers each track's last ``trail`` centres. ``short``: captions
    of tracked boxes are the id alone (small frames). ``zoom``: each frame drawn this many times
    larger (pixels repeated), so that captions and trails fit on small frames.

    The picture is ``visualize.draw_detections``' (same boxes, captions, colours and font, pixel for
    pixel), drawn straight on one PIL copy of the frame: a video's frames pass here one after the
    other, and the tensor <-> PIL round trips of ``draw_detections`` cost more than the drawing."""

    def __init__(self, class_names: Sequence[str], trail: int = 15, short: bool = False, zoom: int = 1) -> None:
        self.class_names, self.trail, self.short, self.zoom = list(class_names), trail, short, zoom
        self._centres: dict[int, deque] = {}

    def draw(self, image: Tensor, det: dict[str, Tensor]) -> np.ndarray:
        """(3, H, W) uint8 frame + its detections -> (zoom * H, zoom * W, 3) uint8 RGB drawing."""
        pixels = image.permute(1, 2, 0).numpy()
        boxes = torch.as_tensor(det["boxes"])
        if self.zoom != 1:
            pixels = pixels.repeat(self.zoom, axis=0).repeat(self.zoom, axis=1)
            boxes = boxes * self.zoom
        canvas = Image.fromarray(np.ascontiguousarray(pixels))
        pen = ImageDraw.Draw(canvas)
        labels = det["labels"].tolist()
        scores = det["scores"].tolist()
        if "track_ids" not in det:
            captions = [f"{self.class_names[lab]} {s:.2f}" for lab, s in zip(labels, scores)]
            _draw_boxes(pen, boxes, captions, [class_color(lab) for lab in labels], canvas.size)
            return np.asarray(canvas)
        ids = det["track_ids"].tolist()
        captions = [
            f"#{t}" if self.short else f"#{t} {self.class_names[lab]} {s:.2f}" for t, lab, s in zip(ids, labels, scores)
        ]
        _draw_boxes(pen, boxes, captions, [class_color(t) for t in ids], canvas.size)
        for t, box in zip(ids, boxes.tolist()):
            centres = self._centres.setdefault(t, deque(maxlen=self.trail))
            centres.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
            if len(centres) > 1:
                pen.line(list(centres), fill=class_color(t), width=2)
        return np.asarray(canvas)


@functools.lru_cache(maxsize=16)
def _caption_font(size: int) -> Union[ImageFont.FreeTypeFont, ImageFont.ImageFont]:
    path = caption_font()
    return ImageFont.truetype(font=path, size=size) if path else ImageFont.load_default()


def _draw_boxes(pen: ImageDraw.ImageDraw, boxes: Tensor, captions: list[str], colors: list[str], size) -> None:
    """torchvision's ``draw_bounding_boxes`` as ``draw_detections`` calls it (width 2, filled captions)."""
    if len(boxes) == 0:
        return
    font = _caption_font(max(10, min(size) // 40))
    width, margin = 2, 3  # the box's width, and the caption's offset: width + 1
    for box, caption, color in zip(boxes.float().to(torch.int64).tolist(), captions, colors):
        rgb = ImageColor.getrgb(color)
        pen.rectangle(box, width=width, outline=rgb)
        corner = (box[0] + margin, box[1] + margin)
        left, top, right, bottom = pen.textbbox(corner, caption, font=font)
        pen.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=rgb)
        pen.text(corner, caption, fill=ImageColor.getrgb(text_color(color)), font=font)


def frame_strip(frames: Sequence[np.ndarray], height: int = 160, gap: int = 4) -> np.ndarray:
    """(H, W, 3) frames side by side, each scaled to ``height``, on white: one (height, W', 3) image."""
    tiles = []
    for f in frames:
        pil = Image.fromarray(f)
        tiles.append(pil.resize((round(pil.width * height / pil.height), height), Image.Resampling.NEAREST))
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    strip = Image.new("RGB", (max(width, 1), height), (255, 255, 255))
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + gap
    return np.asarray(strip)


def as_tensor(image: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor (a copy when ``image`` is read-only, as PIL's arrays are)."""
    image = np.ascontiguousarray(image)
    return torch.from_numpy(image if image.flags.writeable else image.copy()).permute(2, 0, 1)
