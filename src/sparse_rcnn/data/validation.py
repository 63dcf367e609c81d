"""Validation of COCO-format annotations before anything runs, with one-line reports.

Every problem is found, not just the first: malformed entries, duplicate image/annotation ids,
unknown image or category ids, NaN/inf boxes, boxes with non-positive width or height or outside
the image (beyond ``BORDER_TOLERANCE`` pixels), ``area`` / ``iscrowd`` / ``ignore`` values COCO
evaluation cannot use, missing image files, an empty annotation list.
``bad_annotations="error"`` raises ``DataError`` with a summary; ``"skip"`` drops the bad
annotations/images and logs a warning.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, cast

import numpy as np

log = logging.getLogger(__name__)

BORDER_TOLERANCE = 2.0  # pixels a box may extend beyond its image before it counts as a problem
POLICIES = ("error", "skip")
_SHOW = 5  # problems quoted in an error message


class DataError(ValueError):
    """An annotation file or dataset cannot be used; the message says what and how to fix it."""


@dataclass(frozen=True)
class AnnotationProblem:
    """One problem, located by COCO image/annotation id, or (YOLO, VOC) by the file it is in and
    ``where`` in it (``line 3``, ``object 2 (dog)``; ``""``: the whole file)."""

    file: str
    image_id: Optional[int]
    ann_id: Optional[int]
    problem: str
    where: Optional[str] = None

    def __str__(self) -> str:
        if self.where is not None:  # "" : the file as a whole
            return f"{self.file}{' ' if self.where else ''}{self.where}: {self.problem}"
        where = [f"image {self.image_id}"] if self.image_id is not None else []
        where += [f"annotation {self.ann_id}"] if self.ann_id is not None else []
        return f"{self.file}, {', '.join(where) or 'file'}: {self.problem}"


def read_coco_json(path: str) -> dict:
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


def validate_coco(raw: dict, file: str, image_dir: Path) -> tuple[dict, np.ndarray, list[AnnotationProblem]]:
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
    by_name: dict[str, dict] = {}  # file_name -> the first image entry naming it
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
        elif name in by_name:  # its boxes would be scored on the other image's pixels
            bad(iid, None, _shared_file(img, by_name[name]))
        else:
            dropped.discard(iid)
            by_name[name] = img
            sizes[iid] = (w, h)
            images.append(img)

    if not raw["annotations"]:
        bad(None, None, "the annotation list is empty")
    candidates, ann_ids = [], set()
    for ann in raw["annotations"]:  # structure and references
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
        elif problem := _evaluation_fields(ann):
            bad(iid, aid, problem)
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
    finite = cast(np.ndarray, np.isfinite(xywh).all(1))  # (n,) bool (numpy's stubs: or one bool)
    with np.errstate(invalid="ignore", over="ignore"):  # [1e308]*4 overflows to inf: outside the image
        positive = finite & (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        inside = (
            positive
            & (xywh[:, 0] >= -t)
            & (xywh[:, 1] >= -t)
            & (xywh[:, 0] + xywh[:, 2] <= wh[:, 0] + t)
            & (xywh[:, 1] + xywh[:, 3] <= wh[:, 1] + t)
        )
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


def _shared_file(img: dict, first: dict) -> str:
    """The problem of an image entry whose file_name an earlier entry ``first`` already names."""
    same = {k: v for k, v in img.items() if k != "id"} == {k: v for k, v in first.items() if k != "id"}
    return f"file_name {img['file_name']!r} is also image {first['id']}'s" + (
        " (the two entries are identical but for their id: remove one)" if same else "; one file, two images"
    )


def _evaluation_fields(ann: dict) -> Optional[str]:
    """What is wrong with the other fields COCO evaluation reads (pycocotools' COCOeval would
    crash on them after the whole inference): ``area`` a number, ``iscrowd`` and ``ignore`` 0 or
    1 (or a bool). Absent is fine: area defaults to w*h, the flags to 0. (An area that does not
    fit its box is left to the box checks, which say what is wrong with the box.)"""
    area = ann.get("area", 0)
    if type(area) not in (int, float):
        return f"area must be a number, got {area!r}"
    for key in ("iscrowd", "ignore"):
        value = ann.get(key, 0)
        if type(value) not in (int, float, bool) or value not in (0, 1):
            return f"{key} must be 0 or 1, got {value!r}"
    return None


def _fmt(bbox: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in bbox) + "]"


def report_problems(problems: list[AnnotationProblem], file: str, policy: str) -> None:
    first = "; ".join(str(p).removeprefix(f"{file}, ") for p in problems[:_SHOW])
    first += f"; ... ({len(problems) - _SHOW} more)" if len(problems) > _SHOW else ""
    if policy == "error":
        raise DataError(
            f"{len(problems)} problem(s) in {file}: {first}. Fix the file(s), or drop the bad entries with "
            "`data.bad_annotations=skip`"
        )
    log.warning("%s: skipping %d bad annotation(s)/image(s): %s", file, len(problems), first)
