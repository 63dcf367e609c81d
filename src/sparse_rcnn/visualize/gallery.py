"""The worst images of an evaluation, drawn: ground truth and kept predictions with what went wrong.

Ground truth is white: found boxes bare, missed ones captioned "MISSED <class>", crowd boxes grey.
Predictions kept at the chosen thresholds are in their class colour: "<class> 0.91" correct,
"FP <class> 0.40" a false alarm, "<class> 0.55 (is <true class>)" a wrong class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..data.resize import resize_tensor
from ..evaluation.errors import ImageErrors
from ..evaluation.matches import Matches
from .draw import draw_detections
from .plots import save_figure, tile_grid

TILE = 384  # pixels of a tile's longer side, at which captions are drawn


def _xyxy(xywh: np.ndarray) -> torch.Tensor:
    boxes = torch.as_tensor(xywh, dtype=torch.float32).reshape(-1, 4).clone()
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def draw_image_errors(image: torch.Tensor, errors: ImageErrors, matches: Matches, *, side: int = TILE) -> torch.Tensor:
    """(3, H, W) uint8 original image -> (3, h, w) uint8 with the longer side ``side``, boxes drawn."""
    h, w = image.shape[1:]
    scale = side / max(h, w)
    image = resize_tensor(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    names = matches.class_names
    font = max(11, side // 30)
    crowd = np.flatnonzero((matches.gt_image == errors.image_id) & matches.gt_ignored)
    gt: list[tuple[int, Optional[str], str]] = [(g, "crowd", "#a9a9a9") for g in crowd.tolist()]
    gt += [(g, None, "#ffffff") for g in errors.found]
    gt += [(g, f"MISSED {names[matches.gt_label[g]]}", "#ffffff") for g in errors.missed]
    gt += [(g, None, "#ffffff") for _, g in errors.confused]
    for g, caption, color in gt:
        image = draw_detections(
            image,
            _xyxy(matches.gt_box[g]) * scale,
            [0],
            names,
            color=color,
            width=2,
            captions=[caption or ""],
            font_size=font,
        )
    preds = [(d, f"{names[matches.det_label[d]]} {matches.det_score[d]:.2f}") for d in errors.correct]
    preds += [(d, f"FP {names[matches.det_label[d]]} {matches.det_score[d]:.2f}") for d in errors.false_alarms]
    preds += [
        (d, f"{names[matches.det_label[d]]} {matches.det_score[d]:.2f} (is {names[matches.gt_label[g]]})")
        for d, g in errors.confused
    ]
    if preds:
        idx = [d for d, _ in preds]
        image = draw_detections(
            image,
            _xyxy(matches.det_box[idx]) * scale,
            matches.det_label[idx].tolist(),
            names,
            captions=[c for _, c in preds],
            width=2,
            font_size=font,
        )
    return image


def save_gallery(images: Sequence[ImageErrors], matches: Matches, dataset, path: Path, *, columns: int = 4) -> Path:
    """A grid of ``images`` (e.g. ``worst_images``) from ``dataset`` (train=False, indexable by
    position; ``image_ids`` gives each position's id), each titled with its errors."""
    position = {int(i): k for k, i in enumerate(dataset.image_ids)}
    coco = getattr(dataset, "coco", None)
    files = {int(i): str(info.get("file_name", i)) for i, info in coco.imgs.items()} if coco is not None else {}
    fig, axes = tile_grid(len(images), columns=columns, tile_height=4.4)
    if not images:
        axes[0].text(0.5, 0.5, "no errors at the chosen thresholds", ha="center", va="center", fontsize=12)
    for ax, errors in zip(axes, images):
        image, _ = dataset[position[errors.image_id]]
        drawn = draw_image_errors(image, errors, matches)
        ax.imshow(drawn.permute(1, 2, 0).numpy())
        name = Path(files.get(errors.image_id, str(errors.image_id))).name
        parts = [
            f"{len(errors.missed)} missed",
            f"{len(errors.false_alarms)} false",
            f"{len(errors.confused)} wrong class",
        ]
        ax.set_title(f"{name}\n" + ", ".join(parts), fontsize=10)
    fig.suptitle(
        "worst images: white = ground truth (MISSED: not found), colour = prediction "
        "(FP: false alarm, 'is X': wrong class)",
        fontsize=11,
    )
    fig.tight_layout()
    return save_figure(fig, path)
