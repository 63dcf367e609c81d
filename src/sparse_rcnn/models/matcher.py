"""Hungarian matching of predictions to ground truth (paper Sec. 3.4, "set prediction loss").

Cost = 2 * focal classification cost + 5 * L1(xyxy / image whwh) + 2 * (-GIoU), as MMDetection's
``HungarianAssigner`` with ``FocalLossCost(eps=1e-12)``, ``BBoxL1Cost`` and ``IoUCost(giou)``. The
cost matrices of all images are computed on the device and moved to the host once per stage.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou


def focal_cost(logits: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-12) -> Tensor:
    """(N, C) logits, (M,) labels -> (N, M) focal-loss matching cost."""
    prob = logits.sigmoid()
    neg = -(1 - prob + eps).log() * (1 - alpha) * prob.pow(gamma)
    pos = -(prob + eps).log() * alpha * (1 - prob).pow(gamma)
    return pos[:, labels] - neg[:, labels]


class HungarianMatcher(nn.Module):
    """One-to-one assignment of N predictions per image to its M ground-truth boxes."""

    def __init__(
        self,
        *,
        class_weight: float = 2.0,
        l1_weight: float = 5.0,
        giou_weight: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.class_weight, self.l1_weight, self.giou_weight = class_weight, l1_weight, giou_weight
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def cost(self, logits: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor, whwh: Tensor) -> Tensor:
        """logits (N, C), boxes (N, 4) xyxy, gt_labels (M,), gt_boxes (M, 4), whwh (4,) -> (N, M)."""
        cls = focal_cost(logits, gt_labels, self.focal_alpha, self.focal_gamma)
        l1 = torch.cdist(boxes / whwh, gt_boxes / whwh, p=1)
        giou: Tensor = generalized_box_iou(boxes, gt_boxes)
        return self.class_weight * cls + self.l1_weight * l1 - self.giou_weight * giou

    @torch.no_grad()
    def forward(
        self, logits: Tensor, boxes: Tensor, targets: list[dict[str, Tensor]], image_sizes: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """logits (B, N, C), boxes (B, N, 4), targets per image, image_sizes (B, 2) as (h, w).

        Returns per image (pred_idx, gt_idx), int64 on the input device, sorted by pred_idx.
        """
        costs: list[Optional[Tensor]] = []
        for i, t in enumerate(targets):
            h, w = image_sizes[i]
            whwh = torch.stack([w, h, w, h]).to(boxes.dtype)
            if len(t["labels"]) == 0:
                costs.append(None)
                continue
            costs.append(self.cost(logits[i].float(), boxes[i].float(), t["labels"], t["boxes"].float(), whwh))
        host: list[Optional[np.ndarray]] = [None] * len(costs)
        present = [i for i, c in enumerate(costs) if c is not None]
        if present:  # one device -> host copy (one sync) per stage for the whole batch
            blocks = [c for c in costs if c is not None]  # those of ``present``, in order
            joined = torch.cat(blocks, dim=1).cpu().numpy()
            splits = np.cumsum([c.shape[1] for c in blocks])[:-1]
            for i, block in zip(present, np.split(joined, splits, axis=1)):
                host[i] = block
        device = boxes.device
        out: list[tuple[Tensor, Tensor]] = []
        for c in host:
            if c is None:
                empty = torch.empty(0, dtype=torch.int64, device=device)
                out.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(np.nan_to_num(c, nan=1e8, posinf=1e8, neginf=-1e8))
            out.append((torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)))
        return out
