"""Datasets as users have them: a COCO json, a YOLO ``data.yaml`` or a Pascal VOC folder.

Every format is read into the same in-memory COCO-format dict (``images`` with ``file_name``
relative to ``image_dir``, ``width``, ``height``; ``annotations`` with ``bbox`` = ``[x, y, w, h]`` in
continuous pixels and ``iscrowd``; ``categories`` with ids 1..C in class order), so training
targets, validation, ``bad_annotations`` and evaluation are one code path (``CocoDetection``).
The YOLO and VOC readers check what only their format can get wrong and say where: the file and
line (``labels/img7.txt line 3: x_center 1.4 is outside 0..1``) or object; a problem that
``validate_coco`` finds later is reported at the same place (``check_split``).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .split import YOLO_FILES, DatasetSplit
from .validation import AnnotationProblem, DataError, read_coco_json, report_problems, validate_coco
from .voc import read_voc, voc_split_names
from .yolo import read_yolo, yolo_split_names

log = logging.getLogger(__name__)

FORMATS = ("coco", "yolo", "voc")


def detect_format(path: Union[str, Path]) -> str:
    """``coco`` (a .json file), ``yolo`` (a .yaml file, or a folder holding ``data.yaml``) or ``voc``
    (a folder with ``Annotations/``)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset {str(p)!r} not found")
    if p.is_file() and p.suffix.lower() == ".json":
        return "coco"
    if p.is_file() and p.suffix.lower() in (".yaml", ".yml"):
        return "yolo"
    if p.is_dir() and (p / "Annotations").is_dir():
        return "voc"
    if p.is_dir() and any((p / name).is_file() for name in YOLO_FILES):
        return "yolo"
    raise DataError(
        f"cannot tell the format of {str(p)!r}: expected a COCO .json, a YOLO data.yaml (or its folder) or a "
        "Pascal VOC folder (Annotations/, JPEGImages/, ImageSets/Main/); name it with `data.format`"
    )


def resolve_format(path: Union[str, Path], format: Optional[str] = None) -> str:
    """``format`` if given (checked), else ``detect_format``; the result is logged."""
    if format is None:
        format = detect_format(path)
        log.info("%s: %s dataset", path, {"coco": "COCO", "yolo": "YOLO", "voc": "Pascal VOC"}[format])
    elif format not in FORMATS:
        raise DataError(f"unknown dataset format {format!r}; `data.format` is one of {', '.join(FORMATS)}")
    return format


def split_names(path: Union[str, Path], format: Optional[str] = None) -> list[str]:
    """The splits a dataset has (YOLO: the data.yaml keys train/val/test present; VOC: the lists in
    ImageSets/Main, or ``train`` when there are none; COCO: one file, ``train``)."""
    format = resolve_format(path, format)
    if format == "yolo":
        return yolo_split_names(path)
    if format == "voc":
        return voc_split_names(path)
    return ["train"]


def load_split(
    path: Union[str, Path],
    *,
    format: Optional[str] = None,
    split: str = "train",
    images: Optional[Union[str, Path]] = None,
    classes: Optional[Sequence[str]] = None,
) -> DatasetSplit:
    """Read one split of the dataset at ``path`` into COCO form.

    COCO: ``path`` is the annotation file, ``images`` its image folder (default: the file's own
    folder) and ``split`` is not used. YOLO: ``path`` is the data.yaml (or its folder), ``split`` a
    key of it. VOC: ``path`` is the folder, ``split`` a list in ``ImageSets/Main``, ``classes``
    its class list (default: ``labelmap.txt``, else the names in its XMLs); a COCO or YOLO
    dataset carries its own.
    """
    format = resolve_format(path, format)
    if classes and format != "voc":
        raise DataError(f"{path}: a {format.upper()} dataset carries its class list; `data.classes` is for Pascal VOC")
    if format == "coco":
        return read_coco(path, images)
    if images is not None:
        raise DataError(f"{path}: a {format.upper()} dataset names its own images; do not pass `images` with it")
    if format == "yolo":
        return read_yolo(path, split)
    return read_voc(path, split, classes)


def read_coco(ann_file: Union[str, Path], image_dir: Optional[Union[str, Path]] = None) -> DatasetSplit:
    """A COCO annotation file as a ``DatasetSplit`` (images: see ``default_coco_images``)."""
    image_dir = Path(image_dir) if image_dir is not None else default_coco_images(ann_file)
    if not image_dir.is_dir():
        raise DataError(f"image folder {str(image_dir)!r} not found (check the images path)")
    raw = read_coco_json(str(ann_file))
    return DatasetSplit(raw, image_dir, str(ann_file), "coco", reload=functools.partial(read_coco, ann_file, image_dir))


def default_coco_images(ann_file: Union[str, Path]) -> Path:
    """The image folder of a COCO json when none is given: ``<root>/<split>`` for
    ``<root>/annotations/<split>.json`` (the demo's and ``convert_dataset``'s layout) or
    ``.../annotations/instances_<split>.json`` (COCO's), else the json's own folder (Roboflow's)."""
    ann = Path(ann_file)
    if ann.parent.name == "annotations":
        for stem in (ann.stem, ann.stem.rsplit("_", 1)[-1]):
            if (ann.parent.parent / stem).is_dir():
                return ann.parent.parent / stem
    return ann.parent


def check_split(
    split: DatasetSplit, bad_annotations: str, *, report: bool = True
) -> tuple[dict, np.ndarray, list[AnnotationProblem]]:
    """``validate_coco`` on the split, its problems located in the user's files, together with the
    reader's own; if ``report``: ``bad_annotations="error"`` raises ``DataError``, ``"skip"`` warns.
    Returns the dataset without its bad entries, its (n, 4) xywh boxes and all problems."""
    dataset, xywh, found = validate_coco(split.dataset, split.source, split.image_dir)
    problems = list(split.problems) + [_locate(p, split.locations) for p in found]
    if split.format != "coco":  # images without objects are legal in YOLO and VOC, even all of them
        problems = [p for p in problems if p.problem != "the annotation list is empty"]
    if problems and report:
        report_problems(problems, split.source, bad_annotations)
    return dataset, xywh, problems


def _locate(p: AnnotationProblem, locations: dict) -> AnnotationProblem:
    where = locations.get(("ann", p.ann_id)) or locations.get(("image", p.image_id))
    if where is None:
        return p
    return AnnotationProblem(where[0], None, None, p.problem, where=where[1])
