"""Pictures for people: detections drawn on images and image grids (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import draw_bounding_boxes, make_grid

from ..common import naming
from ..data.resize import resize_tensor

# One colour per class, the same in every picture and plot (``class_color``): saturated enough to
# read as a line on white and as a box on a photo (Sasha Trubetskoy's 20 distinct colours, the
# pale ones left out).
_PALETTE = [
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#9a6324",
    "#808000",
    "#469990",
    "#800000",
    "#000075",
    "#bfef45",
    "#dcbeff",
    "#ffe119",
    "#a9a9a9",
]


def class_color(label: int) -> str:
    """The colour of class ``label`` (hex), for boxes and plots alike; cycles after 16 classes."""
    return _PALETTE[int(label) % len(_PALETTE)]


def text_color(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (hex) by its luminance."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"


def caption_font() -> Optional[str]:
    """The TrueType file of the captions (DejaVu Sans, through matplotlib), None for torchvision's
    bitmap default."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:  # matplotlib missing or broken: torchvision's default bitmap font
        return None


def draw_detections(
    image: Tensor,
    boxes: Tensor,
    labels: Sequence[int],
    class_names: Sequence[str],
    scores: Optional[Tensor] = None,
    width: int = 2,
    color: Optional[str] = None,
    captions: Optional[Sequence[str]] = None,
    font_size: Optional[int] = None,
) -> Tensor:
    """(3, H, W) uint8 image + (k, 4) xyxy boxes -> (3, H, W) uint8 with boxes and captions
    (default: class name and score) in the class colours (or all in ``color``)."""
    if len(boxes) == 0:
        return image
    if captions is None:
        captions = [
            class_names[int(lab)] + (f" {float(s):.2f}" if scores is not None else "")
            for lab, s in zip(labels, scores if scores is not None else [None] * len(labels))
        ]
    colors = [color or class_color(lab) for lab in labels]
    font = caption_font()
    size = font_size or max(10, min(image.shape[1:]) // 40)
    return draw_bounding_boxes(
        image,
        boxes.float(),
        labels=list(captions),
        colors=colors,
        width=width,
        font=font,
        font_size=size,
        fill_labels=True,
        label_colors=[text_color(c) if c.startswith("#") else "black" for c in colors],
        label_background_colors=colors,
    )


def save_png(image: Tensor, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):  # a full disk: the path, not PIL's bare OSError
        Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(path)


def save_grid(images: list[Tensor], path: str | Path, nrow: int = 4, size: int = 320) -> None:
    """Resize each (3, H, W) uint8 image to fit ``size`` and save them as one PNG grid."""
    tiles = []
    for img in images:
        pil = Image.fromarray(img.permute(1, 2, 0).numpy())
        pil.thumbnail((size, size))
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(pil, ((size - pil.width) // 2, (size - pil.height) // 2))
        tiles.append(torch.from_numpy(np.array(canvas)).permute(2, 0, 1))
    save_png(make_grid(tiles, nrow=nrow, padding=4, pad_value=255), path)


@torch.no_grad()
def draw_predictions(
    model, dataset, path: str | Path, *, device="cpu", count: int = 12, score_thr: float = 0.3, zoom: int = 3
) -> None:
    """A grid of the first ``count`` images of ``dataset`` (train=False), enlarged ``zoom`` times:
    ground truth in white, predictions above ``score_thr`` in class colours with their scores."""

    model.eval()
    tiles, side = [], 0
    for i in range(min(count, len(dataset))):
        image, target = dataset[i]
        det = {k: v.cpu() for k, v in model([image.to(device)])[0].items()}
        keep = det["scores"] > score_thr
        h, w = image.shape[1:]
        side = max(side, h * zoom, w * zoom)
        big = draw_bounding_boxes(
            resize_tensor(image, (w * zoom, h * zoom)), target["boxes"] * zoom, colors="white", width=1
        )
        tiles.append(
            draw_detections(
                big, det["boxes"][keep] * zoom, det["labels"][keep].tolist(), model.class_names, det["scores"][keep]
            )
        )
    save_grid(tiles, path, nrow=4, size=side)
