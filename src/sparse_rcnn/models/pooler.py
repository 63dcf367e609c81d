"""Multi-level RoIAlign (paper Sec. 3.3: each proposal box pools a 7x7 feature from the FPN).

Level per box as MMDetection's ``SingleRoIExtractor(finest_scale=56)``:
``floor(log2(sqrt(w*h) / 56 + 1e-6))`` clamped to [0, 3] -> P2..P5. (torchvision's
``MultiScaleRoIAlign`` uses another rule, canonical size 224 at P4, so it is not used here.)
``torchvision.ops.roi_align(aligned=True, sampling_ratio=2)`` is bit-identical to MMCV's kernel.
Training on the CPU goes through ``ops.roi_align_grad`` (same forward, a vectorized backward).

Two ways to gather the levels, bit-identical (RoIAlign computes each RoI on its own):
- ``pool_by_level``: each level pools only its own RoIs, picked with ``nonzero`` and written back
  with ``index_copy_``. One RoIAlign per RoI, but the number of RoIs per level is data-dependent
  (a host synchronisation on a GPU; NonZero + ScatterND in an ONNX graph).
- ``pool_static``: every level pools every RoI and ``torch.where`` keeps each RoI's own level.
  Fixed shapes and no host synchronisation (what ``torch.compile(fullgraph=True)``, CUDA graphs,
  ``torch.export`` and TensorRT need), at the price of RoIAlign over all RoIs at all 4 levels;
  the RoIs of other levels go in as zero-size boxes, whose samples all read one pixel, so the
  discarded work is mostly bookkeeping rather than memory traffic.
``forward`` uses ``pool_static`` whenever a graph is captured (``torch.compile``, ``torch.export``,
ONNX export) and for inference off the CPU; ``pool_by_level`` for eager training (4x less pooling
forward and backward, the backward through ``ops.roi_align_grad``) and eager CPU inference
(no synchronisation to save there, 4x less pooling).
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


def capturing_graph() -> bool:
    """Whether this call is being captured into a graph (torch.compile / torch.export, TorchScript
    tracing, ONNX export) rather than run eagerly."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()  # type: ignore[no-untyped-call]  # torch.jit.is_tracing has no annotations
        or torch.onnx.is_in_onnx_export()
    )


class MultiLevelRoIAlign(nn.Module):
    """Pool (B, N, 4) boxes from the FPN maps into (B*N, C, S, S) features, image-major."""

    def __init__(
        self,
        *,
        strides: tuple[int, ...] = (4, 8, 16, 32),
        output_size: int = 7,
        sampling_ratio: int = 2,
        finest_scale: float = 56.0,
    ) -> None:
        super().__init__()
        self.scales = [1.0 / s for s in strides]
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.finest_scale = finest_scale

    def forward(self, features: list[Tensor], boxes: Tensor) -> Tensor:
        """features: per level (B, C, H_l, W_l); boxes: (B, N, 4) xyxy in input pixels."""
        static = capturing_graph() or (not self.training and features[0].device.type != "cpu")
        return self.pool_static(features, boxes) if static else self.pool_by_level(features, boxes)

    def _rois(self, features: list[Tensor], boxes: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N, 4) boxes -> (B*N, 5) rois (batch index, x1, y1, x2, y2) and (B*N,) levels."""
        b, n = boxes.shape[:2]
        flat = boxes.reshape(b * n, 4)
        batch_idx = torch.arange(b, device=boxes.device, dtype=boxes.dtype).repeat_interleave(n)
        rois = torch.cat([batch_idx[:, None], flat], dim=1)
        return rois, roi_levels(flat, len(features), self.finest_scale)

    def _pool(self, level: int, feat: Tensor, rois: Tensor) -> Tensor:
        # rois in the feature dtype, as MMCV casts them
        return roi_align_level(feat, rois.to(feat.dtype), self.output_size, self.scales[level], self.sampling_ratio)

    def pool_by_level(self, features: list[Tensor], boxes: Tensor) -> Tensor:
        """Each level pools its own RoIs (data-dependent shapes; see the module docstring)."""
        rois, levels = self._rois(features, boxes)
        c, s = features[0].shape[1], self.output_size
        out = rois.new_zeros(rois.shape[0], c, s, s, dtype=features[0].dtype)
        for level, feat in enumerate(features):
            idx = torch.nonzero(levels == level).squeeze(1)
            out.index_copy_(0, idx, self._pool(level, feat, rois[idx]))
        return out

    def pool_static(self, features: list[Tensor], boxes: Tensor) -> Tensor:
        """Every level pools every RoI; each keeps its own level's (fixed shapes; see above).
        A level gets the RoIs of the other levels as zero-size boxes at the origin: their samples
        all read one pixel (cheap, cache-resident) and their values are discarded."""
        rois, levels = self._rois(features, boxes)
        out = None
        for level, feat in enumerate(features):
            mine = (levels == level)[:, None]
            level_rois = torch.cat([rois[:, :1], torch.where(mine, rois[:, 1:], torch.zeros_like(rois[:, 1:]))], dim=1)
            pooled = self._pool(level, feat, level_rois)
            out = pooled if out is None else torch.where(mine[:, :, None, None], pooled, out)
        assert out is not None, "no feature levels"
        return out
