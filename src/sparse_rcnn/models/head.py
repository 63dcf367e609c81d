"""The dynamic instance interactive head (paper Sec. 3.3, Fig. 3) and its box decoding.

One ``DynamicStage`` is one of the six refinement stages (MMDetection's ``DIIHead``): proposals
attend to each other, each proposal's feature generates the parameters of a 1x1 "dynamic conv" that
filters its own RoI feature, a feed-forward block follows, and two small towers predict class
logits and box deltas. Stages share no weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# dw, dh are clamped to +-|log(16/1000)| (MMDetection's wh_ratio_clip).
MAX_LOG_SCALE = abs(math.log(16 / 1000))


def decode_boxes(
    boxes: Tensor, deltas: Tensor, stds: tuple[float, float, float, float] = (0.5, 0.5, 1.0, 1.0)
) -> Tensor:
    """Apply (dx, dy, dw, dh) deltas to xyxy boxes; (..., 4) -> (..., 4). No clipping to the image."""
    std = deltas.new_tensor(stds)
    d = deltas * std
    dxy, dwh = d[..., :2], d[..., 2:].clamp(min=-MAX_LOG_SCALE, max=MAX_LOG_SCALE)
    center = (boxes[..., :2] + boxes[..., 2:]) * 0.5
    size = boxes[..., 2:] - boxes[..., :2]
    new_center = center + size * dxy
    new_size = size * dwh.exp()
    return torch.cat([new_center - new_size * 0.5, new_center + new_size * 0.5], dim=-1)


class DynamicConv(nn.Module):
    """Instance interaction: per-proposal 1x1 convs whose weights come from the proposal feature.

    RoI feature (P, C, S, S) -> (P, S*S, C) @ W_in (C x D) -> LN, ReLU -> @ W_out (D x C) -> LN,
    ReLU -> flatten position-major (S*S*C) -> Linear -> LN -> ReLU -> (P, C).
    """

    def __init__(self, *, dim: int = 256, dynamic_dim: int = 64, pooler_size: int = 7) -> None:
        super().__init__()
        self.dim, self.dynamic_dim = dim, dynamic_dim
        self.dynamic_layer = nn.Linear(dim, 2 * dim * dynamic_dim)
        self.norm_in = nn.LayerNorm(dynamic_dim)
        self.norm_out = nn.LayerNorm(dim)
        self.fc_layer = nn.Linear(dim * pooler_size**2, dim)
        self.fc_norm = nn.LayerNorm(dim)

    def forward(self, proposal_feats: Tensor, roi_feats: Tensor) -> Tensor:
        """proposal_feats (P, C), roi_feats (P, C, S, S) -> (P, C)."""
        p = proposal_feats.shape[0]
        params = self.dynamic_layer(proposal_feats)
        n_in = self.dim * self.dynamic_dim
        w_in = params[:, :n_in].view(p, self.dim, self.dynamic_dim)
        w_out = params[:, -n_in:].view(p, self.dynamic_dim, self.dim)
        x = roi_feats.flatten(2).transpose(1, 2)  # (P, S*S, C)
        # .to(): CPU autocast does not cast bmm's inputs to a common type (a no-op in fp32)
        x = torch.relu(self.norm_in(torch.bmm(x.to(w_in.dtype), w_in)))
        x = torch.relu(self.norm_out(torch.bmm(x.to(w_out.dtype), w_out)))
        return torch.relu(self.fc_norm(self.fc_layer(x.flatten(1))))


def _tower(dim: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(dim, dim, bias=False), nn.LayerNorm(dim), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DynamicStage(nn.Module):
    """One refinement stage: (proposal features, RoI features) -> logits, deltas, new features."""

    def __init__(
        self,
        *,
        num_classes: int = 80,
        dim: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        dynamic_dim: int = 64,
        pooler_size: int = 7,
        num_cls_fcs: int = 1,
        num_reg_fcs: int = 3,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.attn_norm = nn.LayerNorm(dim)
        self.dynamic_conv = DynamicConv(dim=dim, dynamic_dim=dynamic_dim, pooler_size=pooler_size)
        self.dynamic_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.ffn_norm = nn.LayerNorm(dim)
        self.cls_tower = _tower(dim, num_cls_fcs)
        self.cls_logits = nn.Linear(dim, num_classes)
        self.box_tower = _tower(dim, num_reg_fcs)
        self.box_deltas = nn.Linear(dim, 4)
        self._reset_parameters(prior_prob)

    def _reset_parameters(self, prior_prob: float) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: Tensor, roi_feats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """feats (B, N, C) proposal features; roi_feats (B*N, C, S, S), image-major.

        Returns logits (B, N, num_classes), deltas (B, N, 4), new features (B, N, C).
        """
        b, n, c = feats.shape
        feats = self.attn_norm(feats + self.self_attn(feats, feats, feats, need_weights=False)[0])
        flat = feats.reshape(b * n, c)
        flat = self.dynamic_norm(flat + self.dynamic_conv(flat, roi_feats))
        flat = self.ffn_norm(flat + self.ffn(flat))
        logits = self.cls_logits(self.cls_tower(flat))
        deltas = self.box_deltas(self.box_tower(flat))
        return logits.view(b, n, -1), deltas.view(b, n, 4), flat.view(b, n, c)
