"""Normalise and pad a list of images into one batch (paper Sec. 4; SPEC "Pre-processing")."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.resize import padded_size


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
        hp, wp = padded_size([tuple(img.shape[1:]) for img in images], self.size_divisor)
        batch = self.mean.new_zeros(len(images), 3, hp, wp)
        for i, img in enumerate(images):
            x = img.to(self.mean.device, self.mean.dtype) if img.dtype == torch.uint8 else img.to(self.mean) * 255.0
            batch[i, :, : img.shape[1], : img.shape[2]] = (x - self.mean) / self.std
        sizes = torch.tensor([[img.shape[1], img.shape[2]] for img in images], device=self.mean.device)
        return batch, sizes
