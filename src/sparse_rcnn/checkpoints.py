"""Checkpoints: MMDetection's files, our own format, downloads with hash checking, atomic writes.

Our format is a dict ``{"format": "sparse-rcnn", "version": 1, "config": <resolved config>,
"class_names": [...], "model": state_dict}`` plus, for training checkpoints, the trainer's state.
MMDetection checkpoints (``{"meta", "state_dict"}``, v2 or v3) load directly through a fixed key
mapping; loading is strict and any mismatch is reported key by key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import tempfile
import urllib.error
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from .config import Config, ConfigError, config_from_dict, load_config
from .zoo import ZOO

log = logging.getLogger(__name__)
FORMAT = "sparse-rcnn"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, downloaded or does not fit the model; the message says why."""


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


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load every key, or raise one error listing missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                parts.append(f"{title} ({len(items)}): {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}")
        raise CheckpointError(f"{source} does not fit this model architecture; " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def read_checkpoint(path: Union[str, Path]) -> dict:
    """torch.load with a clear error for missing, truncated or foreign files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory; pass the .pth file inside it")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        text = str(e)
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if culprit:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds pickled Python objects ({culprit.group(1)}) that safe loading "
                "refuses; if you trust it, re-save only its tensors/state_dict"
            ) from None
        detail = re.search(r"WeightsUnpickler error: \s*(.+)", text)
        reason = detail.group(1).splitlines()[0] if detail else text.split(". ")[0].splitlines()[0] if text else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r} is unreadable, truncated or not a PyTorch file ({type(e).__name__}: {reason})"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{str(path)!r} is not a Sparse R-CNN checkpoint (it holds a {type(ckpt).__name__})")
    if ckpt.get("format") == FORMAT:
        lacking = [k for k in ("config", "model") if not isinstance(ckpt.get(k), dict)]
        if lacking:
            raise CheckpointError(f"{str(path)!r} is an incomplete sparse-rcnn checkpoint (no {' or '.join(lacking)})")
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(
            f"{str(path)!r} is a bare state_dict without its config; save models with "
            "sparse_rcnn.checkpoints.model_checkpoint + save_checkpoint"
        )
    elif not isinstance(ckpt.get("state_dict"), dict):
        keys = ", ".join(map(str, list(ckpt)[:8]))
        raise CheckpointError(
            f"{str(path)!r} is not a Sparse R-CNN checkpoint (no 'state_dict' or sparse-rcnn 'model' entry; "
            f"it holds: {keys or 'nothing'})"
        )
    return ckpt


def save_checkpoint(obj: dict, path: Union[str, Path]) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def model_checkpoint(model: nn.Module, cfg: Config, **extra: Any) -> dict:
    return {"format": FORMAT, "version": 1, "config": cfg.to_dict(), "class_names": list(model.class_names),
            "model": model.state_dict(), **extra}


def download(url: str, *, cache_dir: Optional[Path] = None, progress: bool = True) -> Path:
    """Download ``url`` once into the torch hub cache, checking the sha256 prefix in its name
    (``<name>-<8 hex>.pth``). Returns the local path."""
    cache_dir = Path(cache_dir or Path(torch.hub.get_dir()) / "checkpoints")
    cache_dir.mkdir(parents=True, exist_ok=True)
    filename = url.rsplit("/", 1)[-1]
    dst = cache_dir / filename
    if dst.exists():
        return dst
    m = re.search(r"-([a-f0-9]{8,})\.", filename)
    log.info("downloading %s to %s", url, dst)
    try:
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None, progress=progress)
    except RuntimeError as e:
        if "invalid hash" in str(e):
            raise CheckpointError(f"download of {url} is corrupt (sha256 does not start with {m.group(1)}); try again") from None
        raise CheckpointError(f"download of {url} failed: {e}") from None
    except (urllib.error.URLError, OSError) as e:
        raise CheckpointError(f"cannot download {url}: {getattr(e, 'reason', e)}; check the network, or pass --weights with a local file") from None
    return dst


def sha256_prefix(path: Path, n: int = 8) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def resolve_weights(weights: Optional[str], name: Optional[str]) -> Path:
    """A local path, an http(s) URL, or None for the published weights of the named config."""
    if weights is None:
        if name not in ZOO:
            load_config(name)  # an unknown name raises ConfigError with the closest match
            raise CheckpointError(f"no published weights for {name!r}; pass --weights PATH")
        return download(ZOO[name].url)
    if weights.startswith(("http://", "https://")):
        return download(weights)
    return Path(weights)


def load_model(name: Optional[str] = None, weights: Optional[str] = None, *, device: Union[str, torch.device] = "cpu"):
    """Build a model and load weights: ours (config inside) or MMDetection's (config by name)."""
    from .model import build_model

    if name is None and weights is None:
        raise CheckpointError("give a model name, a checkpoint, or both")
    ckpt = read_checkpoint(resolve_weights(weights, name))
    if is_mmdet_checkpoint(ckpt):
        base = load_config(name) if name else Config()
        cfg = infer_mmdet_config(ckpt["state_dict"], base)
        if name and cfg.model != base.model:
            diff = [f.name for f in dataclasses.fields(base.model) if getattr(cfg.model, f.name) != getattr(base.model, f.name)]
            raise CheckpointError(f"checkpoint does not fit {name!r}: it differs in {', '.join(diff)}; pick the matching --model")
        state = convert_mmdet_state_dict(ckpt["state_dict"])
        class_names = mmdet_class_names(ckpt)
    else:
        try:
            cfg = config_from_dict(ckpt["config"])
        except ConfigError as e:
            raise CheckpointError(f"checkpoint {weights!r} has a config this version cannot use: {e}") from None
        if name and name != cfg.name:
            log.warning("--model %s ignored: the checkpoint carries its own config (%s)", name, cfg.name)
        state, class_names = ckpt["model"], ckpt.get("class_names")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained_backbone=False))
    if class_names is not None and len(class_names) != cfg.model.num_classes:
        class_names = None
    model = build_model(cfg.model, class_names)
    load_state_strict(model, state, source=str(weights or name))
    model.config = cfg
    return model.to(device).eval()
