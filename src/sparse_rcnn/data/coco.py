"""COCO-format detection data (paper Sec. 4: COCO 2017), read the way MMDetection's CocoDataset does.

YOLO and Pascal VOC datasets arrive here in the same COCO form (``sources.load_split`` ->
``CocoDetection.from_split``), so everything below holds for them too.

Categories sorted by id become contiguous labels 0..C-1 (``cat_ids[label]`` maps back). COCO boxes
``[x, y, w, h]`` become xyxy with x2 = x + w. Crowd (``iscrowd=1``) and ``ignore`` boxes never
enter training targets; boxes with w < 1, h < 1 or area <= 0 are left out silently, as MMDetection
does (COCO itself has a few). In training (``train=True``) images with no annotation of a known
category (``filter_empty``) and images smaller than ``min_size`` on either side are skipped,
exactly MMDetection's ``filter_cfg``; evaluation keeps every image.

The annotation file is validated up front (``data.validation``); every problem is listed in
``problems``.

A training image that fails to decode does not stop the epoch: the next decodable image is
returned instead and a warning is logged. In evaluation a decode failure raises ``DataError``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from .images import ImageError, read_image
from .sources import DatasetSplit, check_split, read_coco
from .validation import POLICIES, DataError

log = logging.getLogger(__name__)


class CocoDetection(torch.utils.data.Dataset):
    """Images and boxes of a COCO-format annotation file.

    Item ``i`` is ``(image, target)``: image (3, H, W) uint8 RGB after ``transform`` (training:
    augmented and resized; ``train=False``: the original image, the model resizes it); target has
    ``boxes`` float32 (n, 4) xyxy in the returned image's pixels, ``labels`` int64 (n,),
    ``image_id``, ``orig_size`` (h, w) of the file and ``scale_factor`` (sx, sy).

    ``transform(image, boxes, labels, rng)`` is a ``transforms.build_train_transform`` pipeline;
    its generator is seeded with (seed, epoch, i), so augmentation is reproducible whatever the
    number of loader workers.
    """

    def __init__(
        self,
        ann_file: Union[str, Path],
        image_dir: Union[str, Path],
        *,
        transform: Optional[Callable] = None,
        train: bool = True,
        filter_empty: bool = True,
        min_size: int = 32,
        bad_annotations: str = "error",
        seed: int = 0,
    ) -> None:
        _check_policy(bad_annotations)
        if not Path(image_dir).is_dir():
            raise DataError(f"image folder {str(image_dir)!r} not found (check the images path)")
        self._setup(
            read_coco(ann_file, image_dir),
            transform=transform,
            train=train,
            filter_empty=filter_empty,
            min_size=min_size,
            bad_annotations=bad_annotations,
            seed=seed,
        )

    @classmethod
    def from_split(
        cls,
        split: DatasetSplit,
        *,
        transform: Optional[Callable] = None,
        train: bool = True,
        filter_empty: bool = True,
        min_size: int = 32,
        bad_annotations: str = "error",
        seed: int = 0,
    ) -> "CocoDetection":
        """The dataset of a split read by ``sources.load_split`` (COCO, YOLO or Pascal VOC)."""
        _check_policy(bad_annotations)
        self = cls.__new__(cls)
        self._setup(
            split,
            transform=transform,
            train=train,
            filter_empty=filter_empty,
            min_size=min_size,
            bad_annotations=bad_annotations,
            seed=seed,
        )
        return self

    def _setup(self, split: DatasetSplit, *, transform, train, filter_empty, min_size, bad_annotations, seed) -> None:
        self.ann_file, self.image_dir, self.format = split.source, split.image_dir, split.format
        self.transform, self.train, self.seed, self.epoch = transform, train, seed, 0
        self._reload, self._policy = split.reload, bad_annotations
        dataset, xywh, self.problems = check_split(split, bad_annotations)

        categories = sorted(dataset["categories"], key=lambda c: c["id"])
        self.cat_ids = [c["id"] for c in categories]
        self.class_names = [str(c.get("name", c["id"])) for c in categories]
        label_of = {c: i for i, c in enumerate(self.cat_ids)}
        # Training does not need the COCO index: leaving it out keeps the annotation dicts out of
        # memory (and out of the loader workers' copy-on-write pages); ``coco`` rebuilds it on demand.
        self._coco = None if train else _make_coco(dataset)

        images = dataset["images"]
        per_box, per_label, has_ann = _targets_per_image(dataset, xywh, label_of)
        keep = [
            k
            for k, img in enumerate(images)
            if not train or ((has_ann[k] or not filter_empty) and min(img["width"], img["height"]) >= min_size)
        ]
        self._images = [{k: images[i][k] for k in ("id", "file_name", "width", "height")} for i in keep]
        self._boxes = [per_box[k].reshape(-1, 4) for k in keep]
        self._labels = [per_label[k] for k in keep]
        self.image_ids = [img["id"] for img in self._images]
        if train and not self._images:
            raise DataError(
                f"{self.ann_file}: no usable training images (none with annotations of size >= {min_size} px)"
            )
        self._failed: set[int] = set()  # training items that failed to decode (per loader worker)
        self._warned: set[int] = set()  # items whose decoded size differs from the annotation file

    @property
    def coco(self):
        """pycocotools ``COCO`` index of the validated annotations (boxes only), for evaluation."""
        if self._coco is None:
            # its problems were reported when the dataset was built
            self._coco = _make_coco(check_split(self._reload(), self._policy, report=False)[0])
        return self._coco

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._images)

    def image_folders(self) -> list[Path]:
        """The folders its image files lie in (for outputs that must not land among them)."""
        return sorted({(self.image_dir / img["file_name"]).parent for img in self._images})

    def aspect_ratios(self) -> list[float]:
        """w / h of every item, from the annotation file (no decoding)."""
        return [img["width"] / img["height"] for img in self._images]

    def annotation(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ``i``'s ground truth without decoding its image: (n, 4) float32 xyxy boxes in the
        file's pixels and (n,) int64 labels (crowd, ignored and degenerate boxes left out)."""
        return self._boxes[i], self._labels[i]

    def file_name(self, i: int) -> str:
        return str(self._images[i]["file_name"])

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Any]]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        if not self.train:
            try:
                return self._load(i)
            except ImageError as e:
                raise DataError(f"cannot evaluate on {e}") from None
        for k in range(len(self)):  # a broken training image is replaced by the next good one
            j = (i + k) % len(self)
            if j in self._failed:
                continue
            try:
                return self._load(j, rng=np.random.default_rng([self.seed, self.epoch, j]))
            except ImageError as e:
                self._failed.add(j)
                log.warning("skipping unreadable training image (using the next one instead): %s", e)
        raise DataError(f"{self.ann_file}: none of the {len(self)} images could be decoded")

    def _load(self, i: int, rng: Optional[np.random.Generator] = None) -> tuple[Tensor, dict[str, Any]]:
        info = self._images[i]
        image = read_image(self.image_dir / info["file_name"])
        h, w = image.shape[:2]
        if (w, h) != (info["width"], info["height"]) and i not in self._warned:
            self._warned.add(i)
            log.warning(
                "%s: decoded size %dx%d differs from the annotation's %dx%d; boxes may be off",
                info["file_name"],
                w,
                h,
                info["width"],
                info["height"],
            )
        boxes, labels, factor = self._boxes[i], self._labels[i], (1.0, 1.0)
        if self.transform is not None:
            image, boxes, labels, factor = self.transform(
                image, boxes, labels, rng or np.random.default_rng([self.seed, self.epoch, i])
            )
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        target = {
            "boxes": torch.from_numpy(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            "image_id": int(info["id"]),
            "orig_size": (h, w),
            "scale_factor": (float(factor[0]), float(factor[1])),
        }
        return tensor, target


def _check_policy(bad_annotations: str) -> None:
    if bad_annotations not in POLICIES:
        raise DataError(f"bad_annotations must be one of {', '.join(POLICIES)}, got {bad_annotations!r}")


def collate(batch: list[tuple[Tensor, dict]]) -> tuple[list[Tensor], list[dict]]:
    """DataLoader collate: images of different sizes stay a list (the model pads them)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def _targets_per_image(dataset: dict, xywh: np.ndarray, label_of: dict[int, int]):
    """Training targets of every image: (n_i, 4) float32 xyxy boxes and (n_i,) labels without crowd,
    ignored and degenerate boxes, plus whether each image has any annotation (crowd included, as
    MMDetection's ``filter_empty_gt``). Vectorised over all annotations (COCO train: 860k)."""
    images, anns = dataset["images"], dataset["annotations"]
    row = {img["id"]: k for k, img in enumerate(images)}
    n = len(anns)
    ann_image = np.fromiter((row[a["image_id"]] for a in anns), np.int64, n)
    labels = np.fromiter((label_of[a["category_id"]] for a in anns), np.int64, n)
    area = np.fromiter((_number(a.get("area")) for a in anns), np.float64, n)
    crowd = np.fromiter((bool(a.get("iscrowd", 0) or a.get("ignore", False)) for a in anns), bool, n)
    x, y, w, h = xywh.T
    area = np.where(np.isnan(area), w * h, area)
    usable = ~crowd & (w >= 1) & (h >= 1) & (area > 0)
    boxes = np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)[usable]
    order = np.argsort(ann_image[usable], kind="stable")
    counts = np.bincount(ann_image[usable], minlength=len(images))
    per_box = np.split(boxes[order], np.cumsum(counts)[:-1])
    per_label = np.split(labels[usable][order], np.cumsum(counts)[:-1])
    has_ann = np.bincount(ann_image, minlength=len(images)) > 0
    return per_box, per_label, has_ann


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _make_coco(dataset: dict):
    """A pycocotools COCO index over the validated dataset for box evaluation: area/iscrowd filled
    in if absent, segmentation left out (it is most of COCO's memory and box AP never reads it)."""
    from pycocotools.coco import COCO

    anns = [
        {
            "iscrowd": 0,
            "area": float(ann["bbox"][2] * ann["bbox"][3]),
            **{k: v for k, v in ann.items() if k != "segmentation"},
        }
        for ann in dataset["annotations"]
    ]
    coco = COCO()
    coco.dataset = {**dataset, "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
