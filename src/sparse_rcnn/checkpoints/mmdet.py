"""MMDetection's Sparse R-CNN checkpoints (v2 and v3): key mapping, implied architecture, class names."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional

import torch

from ..config import Config
from .files import FORMAT, CheckpointError

# MMDetection name -> our name (regex on the state_dict key, applied in order, first match wins).
_MMDET_TO_OURS = [
    (r"^backbone\.", "backbone.body."),
    (r"^neck\.lateral_convs\.(\d+)\.conv\.", r"backbone.fpn.inner_blocks.\1.0."),
    (r"^neck\.fpn_convs\.(\d+)\.conv\.", r"backbone.fpn.layer_blocks.\1.0."),
    (r"^rpn_head\.init_proposal_bboxes\.", "proposal_boxes."),
    (r"^rpn_head\.init_proposal_features\.", "proposal_features."),
    (r"^roi_head\.bbox_head\.(\d+)\.attention\.attn\.", r"stages.\1.self_attn."),
    (r"^roi_head\.bbox_head\.(\d+)\.attention_norm\.", r"stages.\1.attn_norm."),
    (r"^roi_head\.bbox_head\.(\d+)\.instance_interactive_conv\.", r"stages.\1.dynamic_conv."),
    (r"^roi_head\.bbox_head\.(\d+)\.instance_interactive_conv_norm\.", r"stages.\1.dynamic_norm."),
    (r"^roi_head\.bbox_head\.(\d+)\.ffn\.layers\.0\.0\.", r"stages.\1.ffn.0."),
    (r"^roi_head\.bbox_head\.(\d+)\.ffn\.layers\.1\.", r"stages.\1.ffn.2."),
    (r"^roi_head\.bbox_head\.(\d+)\.ffn_norm\.", r"stages.\1.ffn_norm."),
    (r"^roi_head\.bbox_head\.(\d+)\.cls_fcs\.", r"stages.\1.cls_tower."),
    (r"^roi_head\.bbox_head\.(\d+)\.reg_fcs\.", r"stages.\1.box_tower."),
    (r"^roi_head\.bbox_head\.(\d+)\.fc_cls\.", r"stages.\1.cls_logits."),
    (r"^roi_head\.bbox_head\.(\d+)\.fc_reg\.", r"stages.\1.box_deltas."),
]


def is_mmdet_checkpoint(ckpt: Any) -> bool:
    return isinstance(ckpt, dict) and "state_dict" in ckpt and ckpt.get("format") != FORMAT


def mmdet_class_names(ckpt: dict) -> Optional[list[str]]:
    meta = ckpt.get("meta") or {}
    names = meta.get("CLASSES") or (meta.get("dataset_meta") or {}).get("classes")
    return list(names) if names else None


def convert_mmdet_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an MMDetection Sparse R-CNN state_dict to ours. Unknown keys raise, listing them."""
    out, unknown = {}, []
    for key, value in state.items():
        for pattern, repl in _MMDET_TO_OURS:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} keys of the MMDetection checkpoint have no counterpart in Sparse R-CNN "
            f"(is it another detector?): {', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}"
        )
    return out


def infer_mmdet_config(state: dict[str, torch.Tensor], base: Config) -> Config:
    """The architecture an MMDetection state_dict implies (depth, proposals, classes, stages)."""
    needed = ["rpn_head.init_proposal_bboxes.weight", "roi_head.bbox_head.0.fc_cls.weight"]
    if any(k not in state for k in needed):
        raise CheckpointError(
            f"not a Sparse R-CNN checkpoint: its state_dict has no {' / '.join(k for k in needed if k not in state)} "
            "(is it another detector, or a backbone only?)"
        )
    layer3 = {int(m.group(1)) for k in state if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
    stages = {int(m.group(1)) for k in state if (m := re.match(r"roi_head\.bbox_head\.(\d+)\.", k))}
    depth = {6: "resnet50", 23: "resnet101"}.get(len(layer3), base.model.backbone)
    model = dataclasses.replace(
        base.model,
        backbone=depth,
        num_proposals=state["rpn_head.init_proposal_bboxes.weight"].shape[0],
        num_classes=state["roi_head.bbox_head.0.fc_cls.weight"].shape[0],
        num_stages=len(stages),
    )
    return dataclasses.replace(base, model=model)
