"""The test-time image path (SPEC "Pre-processing"): keep-ratio resize with MMDetection's numerics.

Resize: ``s = min(long_max / long_side, short_max / short_side)``, new size
``(int(w*s + 0.5), int(h*s + 0.5))``, bilinear (OpenCV ``INTER_LINEAR`` on uint8, as MMDetection),
per-axis scale factor ``(new_w / w, new_h / h)``. Predict, evaluation and the ONNX runtime all
resize here; normalising and padding follow in ``models.sparse_rcnn.ImageBatcher`` (``padded_size`` is shared with
the ONNX runtime's numpy batcher).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def rescale_size(w: int, h: int, scale: tuple[int, int]) -> tuple[int, int]:
    """Keep-ratio target (new_w, new_h) so that the image fits ``scale`` = (long max, short max)."""
    long_max, short_max = max(scale), min(scale)
    s = min(long_max / max(h, w), short_max / min(h, w))
    # At least 1 pixel: a 3000x1 strip would round to height 0 (MMDetection fails there).
    return max(1, int(w * s + 0.5)), max(1, int(h * s + 0.5))


def resize_array(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (new_h, new_w, 3) uint8, OpenCV bilinear; ``size`` is (new_w, new_h)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_LINEAR)


def resize_tensor(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(3, H, W) image -> (3, new_h, new_w). uint8 on the CPU goes through OpenCV (bit-exact with
    MMDetection); anything else through ``F.interpolate`` (same geometry, float arithmetic)."""
    if (image.shape[2], image.shape[1]) == tuple(size):
        return image
    if image.dtype == torch.uint8 and image.device.type == "cpu":
        hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        return torch.from_numpy(np.ascontiguousarray(resize_array(hwc, size))).permute(2, 0, 1)
    out = F.interpolate(image[None].float(), size=(size[1], size[0]), mode="bilinear", align_corners=False)[0]
    return out.round().clamp(0, 255).to(torch.uint8) if image.dtype == torch.uint8 else out


def resize_for_test(image, scale: tuple[int, int]):
    """(3, H, W) tensor or (H, W, 3) uint8 array -> the keep-ratio resized image (same kind) and its
    per-axis scale factor (new_w / w, new_h / h)."""
    if isinstance(image, np.ndarray):
        h, w = image.shape[:2]
        new_w, new_h = rescale_size(w, h, scale)
        return resize_array(image, (new_w, new_h)), (new_w / w, new_h / h)
    h, w = image.shape[-2:]
    new_w, new_h = rescale_size(w, h, scale)
    return resize_tensor(image, (new_w, new_h)), (new_w / w, new_h / h)


def padded_size(sizes: list[tuple[int, int]], divisor: int) -> tuple[int, int]:
    """(h, w) of each image -> (Hp, Wp): the largest of each, rounded up to a multiple of ``divisor``."""
    return -(-max(h for h, _ in sizes) // divisor) * divisor, -(-max(w for _, w in sizes) // divisor) * divisor
