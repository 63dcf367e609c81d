"""Inference post-processing (paper Sec. 3.5): no NMS, just the top-k (proposal, class) pairs.

Sigmoid of the last stage's logits, top-k over the flattened N*C scores (k = 100 or 300), label =
index % C, box = boxes[index // C]. A proposal may appear with several labels. No score threshold
and no clipping (MMDetection's test semantics); mapping back to image pixels is the caller's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TopKPostProcess(nn.Module):
    def __init__(self, *, max_per_image: int = 100) -> None:
        super().__init__()
        self.max_per_image = max_per_image

    def forward(self, logits: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """logits (B, N, C), boxes (B, N, 4) -> boxes (B, k, 4), scores (B, k), labels (B, k),
        sorted by score, highest first."""
        b, n, c = logits.shape
        k = min(self.max_per_image, n * c)
        scores, index = logits.sigmoid().flatten(1).topk(k, dim=1, sorted=True)
        labels = index % c
        picked = torch.gather(boxes, 1, (index // c).unsqueeze(-1).expand(b, k, 4))
        return picked, scores, labels
