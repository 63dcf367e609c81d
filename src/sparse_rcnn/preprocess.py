"""Image pre-processing: keep-ratio resize, normalisation and padding, with MMDetection's numerics.

Resize: ``s = min(long_max / long_side, short_max / short_side)``, new size
``(int(w*s + 0.5), int(h*s + 0.5))``, bilinear (OpenCV ``INTER_LINEAR`` on uint8, as MMDetection),
per-axis scale factor ``(new_w / w, new_h / h)``. Normalisation with the RGB mean/std on 0-255
values, then zero padding at the bottom/right to a multiple of 32 and to the largest image.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def resize_for_test(image: Tensor, scale: tuple[int, int]) -> tuple[Tensor, tuple[float, float]]:
    """(3, H, W) -> keep-ratio resized image and its per-axis scale factor (new_w / w, new_h / h)."""
    h, w = image.shape[-2:]
    new_w, new_h = rescale_size(w, h, scale)
    return resize_tensor(image, (new_w, new_h)), (new_w / w, new_h / h)


class ImageBatcher(nn.Module):
    """Normalise a list of (3, H_i, W_i) RGB images and pad them into one (B, 3, Hp, Wp) batch.

    uint8 images hold 0-255 values; floating images hold 0-1 values (torchvision's convention).
    Returns the batch and ``image_sizes`` (B, 2) int64 (h, w) of each unpadded image.
    """

    def __init__(
        self, *, mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
        std: tuple[float, float, float] = (58.395, 57.12, 57.375), size_divisor: int = 32,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)
        self.size_divisor = size_divisor

    def forward(self, images: list[Tensor]) -> tuple[Tensor, Tensor]:
        if len(images) == 0:
            raise ValueError("expected at least one image")
        for i, img in enumerate(images):
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f"image {i} has shape {tuple(img.shape)}; expected (3, H, W) RGB")
        d = self.size_divisor
        hp = -(-max(img.shape[1] for img in images) // d) * d
        wp = -(-max(img.shape[2] for img in images) // d) * d
        batch = self.mean.new_zeros(len(images), 3, hp, wp)
        for i, img in enumerate(images):
            x = img.to(self.mean.device, self.mean.dtype) if img.dtype == torch.uint8 else img.to(self.mean) * 255.0
            batch[i, :, : img.shape[1], : img.shape[2]] = (x - self.mean) / self.std
        sizes = torch.tensor([[img.shape[1], img.shape[2]] for img in images], device=self.mean.device)
        return batch, sizes
