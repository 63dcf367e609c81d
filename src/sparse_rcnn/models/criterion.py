"""Set prediction loss (paper Sec. 3.4): focal + L1 + GIoU on Hungarian-matched pairs, every stage.

Per stage, as MMDetection's ``DIIHead.loss_by_feat``: sigmoid focal loss (alpha 0.25, gamma 2) over
all B*N*C logits with unmatched proposals as background (all-zero target), L1 on xyxy boxes divided
by each image's whwh, GIoU on absolute boxes; each summed and divided by the number of ground-truth
boxes in the batch (averaged over processes). One deliberate difference: the normaliser is
clamped at 1, so a batch with no boxes gives a finite loss instead of MMDetection's sum / 1.2e-7;
with at least one box the value is MMDetection's.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from .matcher import HungarianMatcher

_F32_EPS = torch.finfo(torch.float32).eps


def num_boxes_normaliser(targets: list[dict[str, Tensor]], device: torch.device) -> Tensor:
    """Ground-truth boxes in the batch, averaged over processes, + float32 eps, at least 1."""
    n = torch.tensor(float(sum(len(t["labels"]) for t in targets)), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return (n + _F32_EPS).clamp(min=1.0)


class SetCriterion(nn.Module):
    """Losses of all stages: ``{"s{k}.loss_cls", "s{k}.loss_bbox", "s{k}.loss_iou"}`` (weighted)."""

    def __init__(
        self,
        *,
        num_classes: int,
        matcher: HungarianMatcher,
        class_weight: float = 2.0,
        l1_weight: float = 5.0,
        giou_weight: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.class_weight, self.l1_weight, self.giou_weight = class_weight, l1_weight, giou_weight
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.last_matches: list[list[tuple[Tensor, Tensor]]] = []  # per stage, for inspection

    def forward(
        self,
        stage_logits: list[Tensor],
        stage_boxes: list[Tensor],
        targets: list[dict[str, Tensor]],
        image_sizes: Tensor,
    ) -> dict[str, Tensor]:
        """stage_logits[k] (B, N, C); stage_boxes[k] (B, N, 4) xyxy (with grad); targets in the
        same pixel frame; image_sizes (B, 2) unpadded (h, w)."""
        normaliser = num_boxes_normaliser(targets, stage_logits[0].device)
        whwh = image_sizes[:, [1, 0, 1, 0]].to(stage_boxes[0].dtype)  # (B, 4)
        losses: dict[str, Tensor] = {}
        self.last_matches = []
        for k, (logits, boxes) in enumerate(zip(stage_logits, stage_boxes)):
            matches = self.matcher(logits.detach(), boxes.detach(), targets, image_sizes)
            self.last_matches.append(matches)
            for name, value in self.stage_losses(logits, boxes, targets, matches, whwh, normaliser).items():
                losses[f"s{k}.{name}"] = value
        return losses

    def stage_losses(
        self,
        logits: Tensor,
        boxes: Tensor,
        targets: list[dict[str, Tensor]],
        matches: list[tuple[Tensor, Tensor]],
        whwh: Tensor,
        normaliser: Tensor,
    ) -> dict[str, Tensor]:
        b, n, c = logits.shape
        batch_idx = torch.cat([torch.full_like(p, i) for i, (p, _) in enumerate(matches)])
        pred_idx = torch.cat([p for p, _ in matches])
        gt_labels = torch.cat([t["labels"][g] for t, (_, g) in zip(targets, matches)])
        gt_boxes = torch.cat([t["boxes"][g] for t, (_, g) in zip(targets, matches)]).to(boxes.dtype)

        cls_target = torch.zeros_like(logits)
        cls_target[batch_idx, pred_idx, gt_labels] = 1.0
        loss_cls = sigmoid_focal_loss(
            logits, cls_target, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="sum"
        )
        if len(pred_idx) == 0:
            zero = boxes.sum() * 0.0
            return {"loss_cls": self.class_weight * loss_cls / normaliser, "loss_bbox": zero, "loss_iou": zero}
        matched = boxes[batch_idx, pred_idx]
        scale = whwh[batch_idx]
        loss_l1 = (matched / scale - gt_boxes / scale).abs().sum()
        loss_giou = generalized_box_iou_loss(matched, gt_boxes, reduction="sum", eps=1e-6)
        return {
            "loss_cls": self.class_weight * loss_cls / normaliser,
            "loss_bbox": self.l1_weight * loss_l1 / normaliser,
            "loss_iou": self.giou_weight * loss_giou / normaliser,
        }
