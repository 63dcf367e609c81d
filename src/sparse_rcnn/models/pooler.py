"""Multi-level RoIAlign (paper Sec. 3.3: each proposal box pools a 7x7 feature from the FPN).

Level per box as MMDetection's ``SingleRoIExtractor(finest_scale=56)``:
``floor(log2(sqrt(w*h) / 56 + 1e-6))`` clamped to [0, 3] -> P2..P5. (torchvision's
``MultiScaleRoIAlign`` uses another rule, canonical size 224 at P4, so it is not used here.)
``torchvision.ops.roi_align(aligned=True, sampling_ratio=2)`` is bit-identical to MMCV's kernel.
Training on the CPU goes through ``ops.roi_align_grad`` (same forward, a vectorized backward).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.roi_align_grad import roi_align_level


def roi_levels(boxes: Tensor, num_levels: int, finest_scale: float = 56.0) -> Tensor:
    """(K, 4) xyxy boxes -> (K,) int64 FPN level index in [0, num_levels)."""
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return levels.clamp(min=0, max=num_levels - 1).long()


class MultiLevelRoIAlign(nn.Module):
    """Pool (B, N, 4) boxes from the FPN maps into (B*N, C, S, S) features, image-major."""

    def __init__(
        self, *, strides: tuple[int, ...] = (4, 8, 16, 32), output_size: int = 7,
        sampling_ratio: int = 2, finest_scale: float = 56.0,
    ) -> None:
        super().__init__()
        self.scales = [1.0 / s for s in strides]
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.finest_scale = finest_scale

    def forward(self, features: list[Tensor], boxes: Tensor) -> Tensor:
        """features: per level (B, C, H_l, W_l); boxes: (B, N, 4) xyxy in input pixels."""
        b, n = boxes.shape[:2]
        flat = boxes.reshape(b * n, 4)
        batch_idx = torch.arange(b, device=boxes.device, dtype=boxes.dtype).repeat_interleave(n)
        rois = torch.cat([batch_idx[:, None], flat], dim=1)
        levels = roi_levels(flat, len(features), self.finest_scale)
        c = features[0].shape[1]
        out = flat.new_zeros(b * n, c, self.output_size, self.output_size, dtype=features[0].dtype)
        for level, (feat, scale) in enumerate(zip(features, self.scales)):
            idx = torch.nonzero(levels == level).squeeze(1)
            level_rois = rois[idx].to(feat.dtype)
            pooled = roi_align_level(feat, level_rois, self.output_size, scale, self.sampling_ratio)
            out.index_copy_(0, idx, pooled)
        return out
