"""Annotated frames: boxes with class and score, and with tracking the track id, a colour per track
and a short trail of the track's last centres."""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ..visualize import class_color, draw_detections


class FrameDrawer:
    """Draws consecutive frames; remembers each track's last ``trail`` centres. ``short``: captions
    of tracked boxes are the id alone (small frames). ``zoom``: each frame drawn this many times
    larger (pixels repeated), so that captions and trails fit on small frames."""

    def __init__(self, class_names: Sequence[str], trail: int = 15, short: bool = False, zoom: int = 1) -> None:
        self.class_names, self.trail, self.short, self.zoom = list(class_names), trail, short, zoom
        self._centres: dict[int, deque] = {}

    def draw(self, image: Tensor, det: dict[str, Tensor]) -> np.ndarray:
        """(3, H, W) uint8 frame + its detections -> (zoom * H, zoom * W, 3) uint8 RGB drawing."""
        if self.zoom != 1:
            image = image.repeat_interleave(self.zoom, 1).repeat_interleave(self.zoom, 2)
            det = {**det, "boxes": torch.as_tensor(det["boxes"]) * self.zoom}
        labels = det["labels"].tolist()
        if "track_ids" not in det:
            drawn = draw_detections(image, det["boxes"], labels, self.class_names, det["scores"])
            return drawn.permute(1, 2, 0).contiguous().numpy()
        ids = det["track_ids"].tolist()
        captions = [
            f"#{t}" if self.short else f"#{t} {self.class_names[lab]} {float(s):.2f}"
            for t, lab, s in zip(ids, labels, det["scores"].tolist())
        ]
        drawn = draw_detections(image, det["boxes"], ids, self.class_names, captions=captions)
        canvas = Image.fromarray(drawn.permute(1, 2, 0).contiguous().numpy())
        pen = ImageDraw.Draw(canvas)
        for t, box in zip(ids, det["boxes"].tolist()):
            centres = self._centres.setdefault(t, deque(maxlen=self.trail))
            centres.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
            if len(centres) > 1:
                pen.line(list(centres), fill=class_color(t), width=2)
        return np.asarray(canvas)


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
