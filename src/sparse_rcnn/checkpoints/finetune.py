"""Start training from a whole detector: a checkpoint's weights on a model with other classes.

``init_from_checkpoint(model, source)`` loads every tensor of a detector checkpoint (ours, or
MMDetection's: a zoo name, a file or a URL, read as ``load_model`` reads it) into a freshly built
``model`` whose classes follow the training data. The class-dependent tensors (each stage's
``cls_logits`` weight and bias, one row per class) are rebuilt: a class whose name matches a
pretrained class (case-insensitive, or through ``class_map`` {new name: pretrained name}) gets the
pretrained row; a new class gets zero weights and the fresh model's bias (the focal prior), so it
scores the prior 0.01 on every box until it is trained and, before the first step, the model's
detections of the pretrained classes are the checkpoint's. (A fresh model's random weight row
would score the new class 0.001-0.25 from features it was never trained on: on the demo's shapes,
chance-level AP 0.26 for a class the model has never seen, and its boxes crowd the others out of
each image's top k.) A different number
of proposals keeps the first pretrained rows and the fresh rows of added ones. Every other tensor
must fit as is: another architecture (backbone depth, widths, stages) is refused, naming what
differs. This is MMDetection's ``load_from`` / detectron2's ``MODEL.WEIGHTS`` with the classifier
kept where the names say it means the same thing.
"""

from __future__ import annotations

import copy
import difflib
import logging
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union, cast

import torch
from torch import Tensor, nn

from ..config import Config, ConfigError, apply_overrides, config_from_dict, load_config
from .download import resolve_weights
from .files import CheckpointError, read_checkpoint
from .mmdet import convert_mmdet_state_dict, infer_mmdet_config, is_mmdet_checkpoint, mmdet_class_names
from .zoo import COCO_CLASS_NAMES, ZOO

log = logging.getLogger(__name__)

_CLASS_TENSOR = re.compile(r"^stages\.\d+\.cls_logits\.(weight|bias)$")  # (num_classes, C) / (num_classes,)
_PROPOSAL_TENSORS = ("proposal_boxes.weight", "proposal_features.weight")  # (num_proposals, 4 / C)


@dataclass(frozen=True)
class Pretrained:
    """A detector checkpoint read and converted to our names: ``state`` (our state_dict keys),
    ``class_names`` (label order), ``config`` (ours: the one it was trained with; a zoo name: its
    YAML; an MMDetection file: None, it carries no architecture)."""

    source: str
    state: dict[str, Tensor]
    class_names: tuple[str, ...]
    config: Optional[Config]


@dataclass(frozen=True)
class InitReport:
    """What ``init_from_checkpoint`` did: tensors loaded as is, rebuilt (some rows pretrained, some
    new) and skipped (no class matched: every row new), and each training class's pretrained class."""

    source: str
    loaded: int
    rebuilt: tuple[str, ...]
    skipped: tuple[str, ...]
    classes: tuple[tuple[str, Optional[str]], ...]  # (training class, pretrained class or None: new)
    proposals: tuple[int, int]  # (checkpoint, model)

    @property
    def mapping(self) -> list[str]:
        """``person <- person``, ``forklift: new``, one per training class."""
        return [f"{new} <- {old}" if old is not None else f"{new}: new" for new, old in self.classes]

    def lines(self) -> list[str]:
        """The report as a screen of text."""
        carried = sum(old is not None for _, old in self.classes)
        out = [
            f"initial weights: {self.source}",
            f"  tensors: {self.loaded} loaded, {len(self.rebuilt)} rebuilt, {len(self.skipped)} skipped",
            f"  classes: {carried} of {len(self.classes)} keep a pretrained classifier row, "
            f"{len(self.classes) - carried} new",
        ]
        if self.proposals[0] != self.proposals[1]:
            out.append(f"  proposals: {self.proposals[0]} -> {self.proposals[1]}")
        out += textwrap.wrap(", ".join(self.mapping), 100, initial_indent="  ", subsequent_indent="  ")
        for title, names in (("rebuilt", self.rebuilt), ("skipped", self.skipped)):
            if names:
                out += textwrap.wrap(
                    f"{title}: " + ", ".join(names), 100, initial_indent="  ", subsequent_indent="    "
                )
        return out

    def record(self) -> dict:
        """The ``{"type": "init", ...}`` record of ``log.jsonl``."""
        return {
            "type": "init",
            "weights": self.source,
            "loaded": self.loaded,
            "rebuilt": list(self.rebuilt),
            "skipped": list(self.skipped),
            "classes": self.mapping,
            "proposals": list(self.proposals),
        }


def read_pretrained(source: Union[str, Path, Pretrained]) -> Pretrained:
    """A zoo name (downloaded once, hash-checked), an http(s) URL or a local file, ours or MMDetection's."""
    if isinstance(source, Pretrained):
        return source
    source = str(source)
    if source in ZOO:
        path = resolve_weights(None, source)
    else:
        path = resolve_weights(source, None)
        if not path.exists() and not path.suffix and "/" not in source:
            hint = difflib.get_close_matches(source, list(ZOO), n=1)
            raise CheckpointError(
                f"{source!r} is neither a zoo name nor a file"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + " (zoo names: `sparse-rcnn models`)"
            )
    ckpt = read_checkpoint(path)
    if is_mmdet_checkpoint(ckpt):
        base = load_config(source) if source in ZOO else Config()
        infer_mmdet_config(ckpt["state_dict"], base)  # refuses other detectors, naming the missing keys
        state = convert_mmdet_state_dict(ckpt["state_dict"])
        names = mmdet_class_names(ckpt)
        if names is None and state["stages.0.cls_logits.weight"].shape[0] == len(COCO_CLASS_NAMES):
            names = list(COCO_CLASS_NAMES)  # MMDetection's COCO models; old files lack the names
        return Pretrained(source, state, _names(names, state), base if source in ZOO else None)
    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {source!r} has a config this version cannot use: {e}") from None
    return Pretrained(source, ckpt["model"], _names(ckpt.get("class_names"), ckpt["model"]), cfg)


def pretrained_config(source: Union[str, Path, Pretrained], overrides: Sequence[str] = ()) -> Config:
    """The config a checkpoint carries (ours; a zoo name's YAML), with ``section.key=value`` overrides."""
    pre = read_pretrained(source)
    if pre.config is None:
        raise ConfigError(
            f"{pre.source!r} is an MMDetection file, which does not record its architecture; pass a `config` "
            "that describes it (a named config or YAML)"
        )
    return config_from_dict(apply_overrides(copy.deepcopy(pre.config.to_dict()), overrides))


def match_classes(
    new: Sequence[str], pretrained: Sequence[str], class_map: Optional[Mapping[str, str]] = None
) -> list[Optional[int]]:
    """For each training class, the index of its pretrained class (or None): ``class_map`` first
    ({training name: pretrained name}), then the same name ignoring case."""
    index: dict[str, int] = {}
    for j, name in enumerate(pretrained):
        index.setdefault(name.strip().lower(), j)
    own = {n.strip().lower() for n in new}
    wanted = {k.strip().lower(): v.strip().lower() for k, v in (class_map or {}).items()}
    for key, value in (class_map or {}).items():
        where = [] if key.strip().lower() in own else [f"{key!r} is not a class of the training data"]
        where += [] if value.strip().lower() in index else [f"{value!r} is not a class of the checkpoint"]
        if where:
            raise ConfigError(
                f"`train.class_map` maps {key!r} -> {value!r}, but {' and '.join(where)} (training classes: "
                f"{_few(new)}; checkpoint classes: {_few(pretrained)})"
            )
    out = []
    for name in new:
        key = name.strip().lower()
        out.append(index[wanted[key]] if key in wanted else index.get(key))
    return out


def init_from_checkpoint(
    model: nn.Module, source: Union[str, Path, Pretrained], *, class_map: Optional[Mapping[str, str]] = None
) -> InitReport:
    """Load a detector checkpoint into the freshly built ``model`` (in place); see the module doc."""
    pre = read_pretrained(source)
    _check_architecture(model, pre)
    class_names = cast("list[str]", model.class_names)  # a SparseRCNN's (models/ sits above checkpoints/)
    own = model.state_dict()
    unexpected = [k for k in pre.state if k not in own]
    missing = [k for k in own if k not in pre.state]
    if unexpected or missing:
        raise CheckpointError(
            f"{pre.source} does not fit this model: "
            + "; ".join(
                f"{title} ({len(keys)}): {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                for title, keys in (("missing", missing), ("unexpected", unexpected))
                if keys
            )
        )
    matches = match_classes(class_names, pre.class_names, class_map)
    state: dict[str, Tensor] = {}
    rebuilt: list[str] = []
    skipped: list[str] = []
    loaded = 0
    for key, fresh in own.items():
        theirs = pre.state[key]
        if _CLASS_TENSOR.match(key):
            pairs = [(i, j) for i, j in enumerate(matches) if j is not None]
            state[key] = _rows(torch.zeros_like(fresh) if key.endswith(".weight") else fresh, theirs, pairs)
            (rebuilt if pairs else skipped).append(key)
        elif key in _PROPOSAL_TENSORS and theirs.shape[0] != fresh.shape[0]:
            state[key] = _rows(fresh, theirs, [(i, i) for i in range(min(len(fresh), len(theirs)))])
            rebuilt.append(key)
        elif theirs.shape != fresh.shape:
            raise CheckpointError(
                f"{pre.source}: {key} has shape {tuple(theirs.shape)}, the model {tuple(fresh.shape)}"
            )
        else:
            state[key] = theirs
            loaded += 1
    model.load_state_dict(state, strict=True)
    names = [pre.class_names[j] if j is not None else None for j in matches]
    return InitReport(
        source=pre.source,
        loaded=loaded,
        rebuilt=tuple(rebuilt),
        skipped=tuple(skipped),
        classes=tuple(zip(class_names, names)),
        proposals=(pre.state[_PROPOSAL_TENSORS[0]].shape[0], own[_PROPOSAL_TENSORS[0]].shape[0]),
    )


def architecture(state: Mapping[str, Tensor]) -> dict[str, object]:
    """The architecture a state_dict (our names) implies: backbone depth and every width or count
    that fixes a tensor's shape, except the class and proposal counts."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"backbone\.body\.layer3\.(\d+)\.", k))}
    bottleneck = "backbone.body.layer1.0.conv3.weight" in state
    depths = {(2, False): "resnet18", (6, False): "resnet34", (6, True): "resnet50", (23, True): "resnet101"}
    try:
        dim = state["proposal_features.weight"].shape[1]
        return {
            "backbone": depths.get((len(blocks), bottleneck), f"a ResNet with {len(blocks)} layer3 blocks"),
            "norm": "bn" if "backbone.body.bn1.running_mean" in state else "gn",
            "fpn_channels": dim,
            "num_stages": len({k.split(".")[1] for k in state if k.startswith("stages.")}),
            "ffn_dim": state["stages.0.ffn.0.weight"].shape[0],
            "dynamic_dim": state["stages.0.dynamic_conv.dynamic_layer.weight"].shape[0] // (2 * dim),
            "pooler_size": math.isqrt(state["stages.0.dynamic_conv.fc_layer.weight"].shape[1] // dim),
            "num_cls_fcs": sum(bool(re.match(r"stages\.0\.cls_tower\.\d+\.weight$", k)) for k in state) // 2,
            "num_reg_fcs": sum(bool(re.match(r"stages\.0\.box_tower\.\d+\.weight$", k)) for k in state) // 2,
        }
    except KeyError as e:
        raise CheckpointError(f"not a Sparse R-CNN state_dict: it has no {e.args[0]}") from None


def _check_architecture(model: nn.Module, pre: Pretrained) -> None:
    """One error naming every architecture value in which the checkpoint and the model differ."""
    ours, theirs = architecture(model.state_dict()), architecture(pre.state)
    stages: Any = model.stages  # a SparseRCNN's DynamicStages (models/ sits above checkpoints/)
    ours["num_heads"] = stages[0].self_attn.num_heads
    if pre.config is not None:  # MMDetection files do not record it (the zoo: 8)
        theirs["num_heads"] = pre.config.model.num_heads
    diff = [k for k in ours if k in theirs and ours[k] != theirs[k]]
    if diff:
        fix = ", ".join(f"`model.{k}={theirs[k]}`" for k in diff if k != "norm")
        raise CheckpointError(
            f"{pre.source} has another architecture than the model: "
            + ", ".join(f"model.{k} {theirs[k]} (model: {ours[k]})" for k in diff)
            + (f"; fine-tuning keeps the architecture: use a config with {fix}" if fix else "; use its config")
        )


def _rows(fresh: Tensor, theirs: Tensor, pairs: list[tuple[int, int]]) -> Tensor:
    """``fresh`` with row i replaced by ``theirs[j]`` for each (i, j)."""
    out = fresh.clone()
    if pairs:
        i, j = (torch.tensor(v) for v in zip(*pairs))
        out[i] = theirs[j].to(out.dtype)
    return out


def _names(names: Optional[Sequence[str]], state: Mapping[str, Tensor]) -> tuple[str, ...]:
    n = state["stages.0.cls_logits.weight"].shape[0] if "stages.0.cls_logits.weight" in state else 0
    return tuple(str(x) for x in names) if names and len(names) == n else tuple(str(i) for i in range(n))


def _few(names: Sequence[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f" ... ({len(names)})" if len(names) > n else "")
