"""COCO-format detection data (paper Sec. 4: COCO 2017), read the way MMDetection's CocoDataset does.

Categories sorted by id become contiguous labels 0..C-1 (``cat_ids[label]`` maps back). COCO boxes
``[x, y, w, h]`` become xyxy with x2 = x + w. Crowd (``iscrowd=1``) and ``ignore`` boxes never
enter training targets; boxes with w < 1, h < 1 or area <= 0 are left out silently, as MMDetection
does (COCO itself has a few). In training (``train=True``) images with no annotation of a known
category (``filter_empty``) and images smaller than ``min_size`` on either side are skipped,
exactly MMDetection's ``filter_cfg``; evaluation keeps every image.

The annotation file is validated up front and every problem is listed in ``problems``: malformed
entries, duplicate image/annotation ids, unknown image or category ids, NaN/inf boxes, boxes with
non-positive width or height or outside the image (beyond ``BORDER_TOLERANCE`` pixels), missing
image files, an empty annotation list. ``bad_annotations="error"`` raises ``DataError`` with a
summary; ``"skip"`` drops the bad annotations/images and logs a warning.

A training image that fails to decode does not stop the epoch: the next decodable image is
returned instead and a warning is logged. In evaluation a decode failure raises ``DataError``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from .images import ImageError, read_image

log = logging.getLogger(__name__)

BORDER_TOLERANCE = 2.0  # pixels a box may extend beyond its image before it counts as a problem
_POLICIES = ("error", "skip")
_SHOW = 5  # problems quoted in an error message


class DataError(ValueError):
    """An annotation file or dataset cannot be used; the message says what and how to fix it."""


@dataclass(frozen=True)
class AnnotationProblem:
    file: str
    image_id: Optional[int]
    ann_id: Optional[int]
    problem: str

    def __str__(self) -> str:
        where = [f"image {self.image_id}"] if self.image_id is not None else []
        where += [f"annotation {self.ann_id}"] if self.ann_id is not None else []
        return f"{self.file}, {', '.join(where) or 'file'}: {self.problem}"


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
        self, ann_file: Union[str, Path], image_dir: Union[str, Path], *, transform: Optional[Callable] = None,
        train: bool = True, filter_empty: bool = True, min_size: int = 32, bad_annotations: str = "error",
        seed: int = 0,
    ) -> None:
        if bad_annotations not in _POLICIES:
            raise DataError(f"bad_annotations must be one of {', '.join(_POLICIES)}, got {bad_annotations!r}")
        self.ann_file, self.image_dir = str(ann_file), Path(image_dir)
        self.transform, self.train, self.seed, self.epoch = transform, train, seed, 0
        if not self.image_dir.is_dir():
            raise DataError(f"image folder {str(self.image_dir)!r} not found (check the images path)")
        raw = _read_json(self.ann_file)
        dataset, xywh, self.problems = _validate(raw, self.ann_file, self.image_dir)
        if self.problems:
            _report(self.problems, self.ann_file, bad_annotations)

        categories = sorted(dataset["categories"], key=lambda c: c["id"])
        self.cat_ids = [c["id"] for c in categories]
        self.class_names = [str(c.get("name", c["id"])) for c in categories]
        label_of = {c: i for i, c in enumerate(self.cat_ids)}
        # Training does not need the COCO index: leaving it out keeps the annotation dicts out of
        # memory (and out of the loader workers' copy-on-write pages); ``coco`` rebuilds it on demand.
        self._coco = None if train else _make_coco(dataset)

        images = dataset["images"]
        per_box, per_label, has_ann = _targets_per_image(dataset, xywh, label_of)
        keep = [k for k, img in enumerate(images)
                if not train or ((has_ann[k] or not filter_empty) and min(img["width"], img["height"]) >= min_size)]
        self._images = [{k: images[i][k] for k in ("id", "file_name", "width", "height")} for i in keep]
        self._boxes = [per_box[k].reshape(-1, 4) for k in keep]
        self._labels = [per_label[k] for k in keep]
        self.image_ids = [img["id"] for img in self._images]
        if train and not self._images:
            raise DataError(f"{self.ann_file}: no usable training images (none with annotations of size >= {min_size} px)")
        self._failed: set[int] = set()  # training items that failed to decode (per loader worker)
        self._warned: set[int] = set()  # items whose decoded size differs from the annotation file

    @property
    def coco(self):
        """pycocotools ``COCO`` index of the validated annotations (boxes only), for evaluation."""
        if self._coco is None:
            self._coco = _make_coco(_validate(_read_json(self.ann_file), self.ann_file, self.image_dir)[0])
        return self._coco

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._images)

    def aspect_ratios(self) -> list[float]:
        """w / h of every item, from the annotation file (no decoding)."""
        return [img["width"] / img["height"] for img in self._images]

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
            log.warning("%s: decoded size %dx%d differs from the annotation's %dx%d; boxes may be off",
                        info["file_name"], w, h, info["width"], info["height"])
        boxes, labels, factor = self._boxes[i], self._labels[i], (1.0, 1.0)
        if self.transform is not None:
            image, boxes, labels, factor = self.transform(image, boxes, labels, rng or np.random.default_rng([self.seed, self.epoch, i]))
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        target = {
            "boxes": torch.from_numpy(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            "image_id": int(info["id"]),
            "orig_size": (h, w),
            "scale_factor": (float(factor[0]), float(factor[1])),
        }
        return tensor, target


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


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        raise DataError(f"annotation file {path!r} not found")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"annotation file {path!r} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise DataError(f"annotation file {path!r} must hold a COCO object with images, annotations, categories")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(raw.get(k), list)]
    if missing:
        raise DataError(f"annotation file {path!r} is not COCO format: no list {', '.join(repr(k) for k in missing)}")
    return raw


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate(raw: dict, file: str, image_dir: Path) -> tuple[dict, np.ndarray, list[AnnotationProblem]]:
    """Returns the dataset without its bad entries, the (n, 4) float64 xywh boxes of its
    annotations, and the list of problems found (in file order within each kind of check)."""
    problems: list[AnnotationProblem] = []

    def bad(image_id: Optional[int], ann_id: Optional[int], problem: str) -> None:
        problems.append(AnnotationProblem(file, image_id, ann_id, problem))

    categories, cat_ids = [], set()
    for cat in raw["categories"]:
        cid = cat.get("id") if isinstance(cat, dict) else None
        if not _is_int(cid):
            bad(None, None, f"category entry {cat!r} has no integer id")
        elif cid in cat_ids:
            bad(None, None, f"duplicate category id {cid}")
        else:
            cat_ids.add(cid)
            categories.append(cat)

    listing = set(os.listdir(image_dir))
    images, sizes, dropped = [], {}, set()  # dropped: ids of bad images, whose annotations go silently
    for img in raw["images"]:
        iid = img.get("id") if isinstance(img, dict) else None
        if not _is_int(iid):
            bad(None, None, f"image entry {str(img)[:80]} has no integer id")
            continue
        name, w, h = img.get("file_name"), img.get("width"), img.get("height")
        if iid in sizes:
            bad(iid, None, "duplicate image id")
            continue
        dropped.add(iid)
        if not isinstance(name, str) or not name:
            bad(iid, None, "image entry has no file_name")
        elif not (isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0):
            bad(iid, None, f"image width/height missing or not positive ({w!r} x {h!r})")
        elif not (name in listing or ("/" in name and (image_dir / name).is_file())):
            bad(iid, None, f"image file {name!r} not found in {image_dir}")
        else:
            dropped.discard(iid)
            sizes[iid] = (w, h)
            images.append(img)

    if not raw["annotations"]:
        bad(None, None, "the annotation list is empty")
    candidates, ann_ids = [], set()
    for pos, ann in enumerate(raw["annotations"]):  # structure and references
        aid = ann.get("id") if isinstance(ann, dict) else None
        if not _is_int(aid):
            bad(ann.get("image_id") if isinstance(ann, dict) else None, None, "annotation has no integer id")
            continue
        iid, bbox = ann.get("image_id"), ann.get("bbox")
        if aid in ann_ids:
            bad(iid, aid, "duplicate annotation id")
            continue
        ann_ids.add(aid)
        if iid in dropped:
            continue
        if iid not in sizes:
            bad(iid, aid, "refers to an image that is missing or unusable" if _is_int(iid) else "no integer image_id")
        elif ann.get("category_id") not in cat_ids:
            bad(iid, aid, f"unknown category id {ann.get('category_id')!r}")
        elif not (isinstance(bbox, list) and len(bbox) == 4):
            bad(iid, aid, f"bbox must be [x, y, w, h], got {bbox!r}")
        else:
            candidates.append(ann)
    # numbers, vectorised; the slow per-item type check only runs if some value is not a number
    bboxes = [a["bbox"] for a in candidates]
    if not set(map(type, itertools.chain.from_iterable(bboxes))) <= {int, float}:
        numeric = [all(type(v) in (int, float) for v in b) for b in bboxes]
        for ann, ok in zip(candidates, numeric):
            if not ok:
                bad(ann["image_id"], ann["id"], f"bbox must be [x, y, w, h] numbers, got {ann['bbox']!r}")
        candidates = [a for a, ok in zip(candidates, numeric) if ok]
        bboxes = [a["bbox"] for a in candidates]
    xywh = np.array(bboxes, dtype=np.float64).reshape(-1, 4)
    wh = np.array([sizes[a["image_id"]] for a in candidates], dtype=np.float64).reshape(-1, 2)
    t = BORDER_TOLERANCE
    finite = np.isfinite(xywh).all(1)
    with np.errstate(invalid="ignore"):
        positive = finite & (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        inside = positive & (xywh[:, 0] >= -t) & (xywh[:, 1] >= -t) & (xywh[:, 0] + xywh[:, 2] <= wh[:, 0] + t) \
            & (xywh[:, 1] + xywh[:, 3] <= wh[:, 1] + t)
    for k in np.flatnonzero(~inside).tolist():
        ann, b = candidates[k], _fmt(bboxes[k])
        if not finite[k]:
            bad(ann["image_id"], ann["id"], f"bbox has NaN/inf values {b}")
        elif not positive[k]:
            bad(ann["image_id"], ann["id"], f"bbox has non-positive width/height {b}")
        else:
            bad(ann["image_id"], ann["id"], f"bbox {b} lies outside the {wh[k, 0]:g}x{wh[k, 1]:g} image")
    annotations = [a for a, ok in zip(candidates, inside.tolist()) if ok]
    return {**raw, "categories": categories, "images": images, "annotations": annotations}, xywh[inside], problems


def _fmt(bbox: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in bbox) + "]"


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _report(problems: list[AnnotationProblem], file: str, policy: str) -> None:
    first = "; ".join(str(p).removeprefix(f"{file}, ") for p in problems[:_SHOW])
    first += f"; ... ({len(problems) - _SHOW} more)" if len(problems) > _SHOW else ""
    if policy == "error":
        raise DataError(
            f"{len(problems)} problem(s) in {file}: {first}. Fix the file, or drop the bad entries with "
            "--set data.bad_annotations=skip (Python: bad_annotations='skip')"
        )
    log.warning("%s: skipping %d bad annotation(s)/image(s): %s", file, len(problems), first)


def _make_coco(dataset: dict):
    """A pycocotools COCO index over the validated dataset for box evaluation: area/iscrowd filled
    in if absent, segmentation left out (it is most of COCO's memory and box AP never reads it)."""
    from pycocotools.coco import COCO

    anns = [{"iscrowd": 0, "area": float(ann["bbox"][2] * ann["bbox"][3]),
             **{k: v for k, v in ann.items() if k != "segmentation"}} for ann in dataset["annotations"]]
    coco = COCO()
    coco.dataset = {**dataset, "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
