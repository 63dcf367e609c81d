"""Sparse R-CNN (paper Sec. 3, Fig. 3): backbone -> learnable proposals -> 6 dynamic stages.

``SparseRCNN`` follows torchvision's detection contract: ``model(images, targets)`` returns the
weighted losses in training and ``[{"boxes", "scores", "labels"}]`` in image pixels in eval mode.
``detect`` is the tensor-only core (normalised padded batch -> top-k), which ONNX export uses;
``ImageBatcher`` makes that batch (normalise, zero-pad to a multiple of 32).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert

from ..config import Config
from ..data.resize import padded_size, resize_for_test
from ..ops import optimize_for_inference
from .criterion import SetCriterion
from .detector import predict
from .head import DynamicStage, decode_boxes
from .pooler import MultiLevelRoIAlign
from .postprocess import TopKPostProcess


class ImageBatcher(nn.Module):
    """Normalise a list of (3, H_i, W_i) RGB images and pad them into one (B, 3, Hp, Wp) batch.

    uint8 images hold 0-255 values; floating images hold 0-1 values (torchvision's convention).
    Returns the batch and ``image_sizes`` (B, 2) int64 (h, w) of each unpadded image.
    """

    mean: Tensor  # (3, 1, 1) buffers
    std: Tensor

    def __init__(
        self,
        *,
        mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
        std: tuple[float, float, float] = (58.395, 57.12, 57.375),
        size_divisor: int = 32,
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
        hp, wp = padded_size([(img.shape[1], img.shape[2]) for img in images], self.size_divisor)
        batch = self.mean.new_zeros(len(images), 3, hp, wp)
        for i, img in enumerate(images):
            x = img.to(self.mean.device, self.mean.dtype) if img.dtype == torch.uint8 else img.to(self.mean) * 255.0
            batch[i, :, : img.shape[1], : img.shape[2]] = (x - self.mean) / self.std
        sizes = torch.tensor([[img.shape[1], img.shape[2]] for img in images], device=self.mean.device)
        return batch, sizes


class SparseRCNN(nn.Module):
    config: Config  # set by ``models.load_model`` (the config a checkpoint carries); absent otherwise

    def __init__(
        self,
        *,
        backbone: nn.Module,
        stages: Sequence[DynamicStage],
        pooler: MultiLevelRoIAlign,
        batcher: ImageBatcher,
        criterion: SetCriterion,
        postprocess: TopKPostProcess,
        num_proposals: int = 100,
        dim: int = 256,
        test_scale: tuple[int, int] = (1333, 800),
        class_names: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.proposal_boxes = nn.Embedding(num_proposals, 4)  # normalised cx, cy, w, h
        self.proposal_features = nn.Embedding(num_proposals, dim)
        self.stages = nn.ModuleList(stages)
        self.pooler = pooler
        self.batcher = batcher
        self.criterion = criterion
        self.postprocess = postprocess
        self.test_scale = test_scale
        self.head_autocast: Optional[torch.dtype] = None  # see optimize_for_inference
        num_classes = stages[0].cls_logits.out_features
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        # Score thresholds chosen on an evaluation set (``evaluation.choose_thresholds``), set by
        # ``checkpoints.load_model`` when the checkpoint has them; ``predict(score_thr="auto")`` uses them.
        self.score_thresholds: Optional[dict[str, Any]] = None
        with torch.no_grad():  # every proposal starts as the whole image
            self.proposal_boxes.weight[:, :2] = 0.5
            self.proposal_boxes.weight[:, 2:] = 1.0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(
        self, images: list[Tensor], targets: Optional[list[dict[str, Tensor]]] = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """images: (3, H, W) RGB tensors, uint8 0-255 or float 0-1.

        Training: images are already augmented and resized by the data pipeline; targets hold
        ``boxes`` (n, 4) absolute xyxy in those pixels and ``labels`` (n,). Returns the weighted
        losses of every stage; their sum is the objective.
        Eval: each image is resized to ``test_scale``; returns per image ``boxes`` (k, 4) in its
        own pixels, ``scores`` (k,), ``labels`` (k,), sorted by score.
        """
        if self.training:
            if targets is None:
                raise ValueError("training needs targets; call model.eval() for inference")
            batch, sizes = self.batcher(images)
            device = batch.device
            targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
            logits, boxes = self.run_stages(self.backbone(batch), sizes)
            losses: dict[str, Tensor] = self.criterion(logits, boxes, targets, sizes)
            return losses
        resized, factors = zip(*(resize_for_test(img, self.test_scale) for img in images))
        return self.detect_resized(list(resized), list(factors))

    @property
    def size_divisor(self) -> int:
        """Padded inputs are a multiple of this many pixels (``ImageBatcher``)."""
        return self.batcher.size_divisor

    def detect_resized(
        self, images: list[Tensor], scale_factors: list[tuple[float, float]], *, independent: bool = False
    ) -> list[dict[str, Tensor]]:
        """Images already resized to the test scale, each with its (sx, sy) -> detections in the
        original pixels (boxes divided by the per-axis scale factor).

        ``independent``: each image goes through ``detect`` alone, so its detections are
        bit-identical to the image's at batch 1. A shared forward is not: oneDNN picks convolution
        kernels by batch size (small feature maps round differently at batch 1 and N) and
        vectorised element-wise loops compute a tensor's tail in scalar code, so the last bit moves
        with the batch (scores ~1e-7 relative, more after six stages). Otherwise one forward for
        the batch, padded to its largest image, as MMDetection."""
        if independent and len(images) > 1:
            return [det for img, f in zip(images, scale_factors) for det in self._detect_batch([img], [f])]
        return self._detect_batch(images, scale_factors)

    def _detect_batch(self, images: list[Tensor], scale_factors: list[tuple[float, float]]) -> list[dict[str, Tensor]]:
        """``images`` as one padded batch through ``detect``."""
        batch, sizes = self.batcher(images)
        # made before detect: on a GPU, copying it in afterwards would wait for detect to finish
        factors = torch.tensor(
            [[sx, sy, sx, sy] for sx, sy in scale_factors], device=batch.device, dtype=self.proposal_boxes.weight.dtype
        )
        boxes, scores, labels = self.detect(batch, sizes)
        boxes = boxes / factors[:, None]
        return [{"boxes": b, "scores": s, "labels": lab} for b, s, lab in zip(boxes, scores, labels)]

    def detect(self, batch: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised padded (B, 3, Hp, Wp) batch, (B, 2) unpadded (h, w) -> top-k boxes (B, k, 4)
        in batch pixels, scores (B, k), labels (B, k).

        One static graph: fixed shapes for given input shapes, no host synchronisation (no
        ``.item()``, ``.tolist()``, ``nonzero`` or branch on a tensor's value), so it compiles
        whole (``ops.compile_detect``), exports with ``torch.export`` and replays as a CUDA graph;
        ``tests/test_static_graph.py`` fails if that breaks."""
        logits, boxes = self.run_stages(self.backbone(batch), image_sizes)
        top: tuple[Tensor, Tensor, Tensor] = self.postprocess(logits[-1], boxes[-1])
        return top

    def initial_proposals(self, image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 2) (h, w) -> boxes (B, N, 4) absolute xyxy, features (B, N, C)."""
        whwh = image_sizes[:, [1, 0, 1, 0]].to(self.proposal_boxes.weight.dtype)
        boxes = box_convert(self.proposal_boxes.weight, "cxcywh", "xyxy")[None] * whwh[:, None]
        feats = self.proposal_features.weight[None].expand(image_sizes.shape[0], -1, -1)
        return boxes, feats

    def run_stages(self, features: list[Tensor], image_sizes: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """FPN maps + (B, 2) sizes -> per stage logits (B, N, C) and decoded boxes (B, N, 4).

        Decoded boxes keep their gradient for the loss; the next stage sees them detached.
        """
        boxes, feats = self.initial_proposals(image_sizes)
        all_logits, all_boxes = [], []
        autocast = self.head_autocast is not None and not self.training
        for stage in self.stages:
            roi_feats = self.pooler(features, boxes)
            with torch.autocast(boxes.device.type, dtype=self.head_autocast or torch.float32, enabled=autocast):
                logits, deltas, feats = stage(feats, roi_feats)
            logits, deltas = logits.to(boxes.dtype), deltas.to(boxes.dtype)
            new_boxes = decode_boxes(boxes, deltas)
            all_logits.append(logits)
            all_boxes.append(new_boxes)
            boxes = new_boxes.detach()
        return all_logits, all_boxes

    def optimize_for_inference(self, **options: Any) -> "SparseRCNN":
        """Opt-in fast inference modes, in place: ``sparse_rcnn.ops.optimize_for_inference``."""
        return optimize_for_inference(self, **options)

    def predict(self, inputs: Any, *, batch_size: int = 1, score_thr: Union[float, str] = 0.0) -> Any:
        """Detect objects in file paths, PIL images, (H, W, 3) RGB arrays or (3, H, W) tensors.

        Returns one dict per input: ``boxes`` (k, 4) in original pixels, ``scores``, ``labels``,
        and ``categories`` (class names). ``score_thr="auto"``: the per-class thresholds stored
        with the checkpoint (``score_thresholds``). See ``models.detector.predict``.
        """
        return predict(self, inputs, batch_size=batch_size, score_thr=score_thr)
