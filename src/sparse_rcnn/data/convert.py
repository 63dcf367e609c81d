"""``convert_dataset``: a dataset from one format to another (COCO, YOLO, Pascal VOC).

The source is read and validated like training data (``sources.load_split`` + ``check_split``),
every split of it, and written under a new folder (refused if it exists and is not empty; written
to a sibling temporary folder first, so a failure leaves nothing half-written). Images are
hard-linked where possible, else copied. What each format can hold:

* COCO: ``<out>/annotations/<split>.json`` and ``<out>/<split>/``; boxes ``[x, y, w, h]`` as read.
* YOLO: ``<out>/data.yaml``, ``<out>/images/<split>/``, ``<out>/labels/<split>/``; centre and size
  normalised with 6 decimals (corners at most 7.5e-7 of the image size off). Only the splits train, val and
  test (the ones data.yaml has keys for); crowd / difficult boxes are left out (YOLO has no flag).
* VOC: ``<out>/Annotations``, ``<out>/JPEGImages``, ``<out>/ImageSets/Main/<split>.txt``; corners
  rounded to whole pixels as the devkit's 1-based indices (``xmin = round(x1) + 1``,
  ``xmax = round(x2)``: at most 0.5 px off); crowd boxes become ``<difficult>1``.

Class names and order, image sizes and file names (made unique where needed) carry over.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Union

import yaml

from ..common import check_outside
from .sources import FORMATS, check_split, load_split, resolve_format, split_names
from .validation import DataError

log = logging.getLogger(__name__)
_OUTPUT_ERRNOS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EFBIG,
)  # errors of the output (a copy names its source)


def convert_dataset(
    src: Union[str, Path],
    out: Union[str, Path],
    to: str,
    *,
    format: Optional[str] = None,
    images: Optional[Union[str, Path]] = None,
    split: str = "train",
    bad_annotations: str = "error",
) -> dict[str, int]:
    """Write the dataset at ``src`` (format ``format`` or detected; a COCO json's images in
    ``images``, its split named ``split``) as ``to`` under ``out``. Returns images per split."""
    if to not in FORMATS:
        raise DataError(f"cannot convert to {to!r}; the formats are {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(
            f"{out} already exists and is not an empty folder; nothing was written (pick a new output folder)"
        )
    fmt = resolve_format(src, format)
    splits = {}
    for name in split_names(src, fmt) if fmt != "coco" else [split]:
        read = load_split(src, format=fmt, split=name, images=images)
        dataset = check_split(read, bad_annotations)[0]
        splits[name] = (dataset, read.image_dir)
    check_outside(out, {(d / img["file_name"]).parent for ds, d in splits.values() for img in ds["images"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}[to](tmp, splits)
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in _OUTPUT_ERRNOS:  # about what was written: name the output
            raise OSError(e.errno, e.strerror, str(out)) from None
        raise
    return {name: len(dataset["images"]) for name, (dataset, _) in splits.items()}


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _unique_names(file_names: list[str]) -> list[str]:
    """Flat file names with unique stems: the base name, or the path joined by ``_`` on a clash."""
    stems: dict[str, int] = {}
    for name in file_names:
        stems[Path(name).stem] = stems.get(Path(name).stem, 0) + 1
    out, taken = [], set()
    for name in file_names:
        new = Path(name).name if stems[Path(name).stem] == 1 else "_".join(Path(name).parts).lstrip("_/")
        stem, suffix, k = Path(new).stem, Path(new).suffix, 1
        while Path(new).stem in taken:
            new, k = f"{stem}_{k}{suffix}", k + 1
        taken.add(Path(new).stem)
        out.append(new)
    return out


def _by_image(dataset: dict) -> dict[int, list[dict]]:
    anns: dict[int, list[dict]] = {img["id"]: [] for img in dataset["images"]}
    for ann in dataset["annotations"]:
        anns[ann["image_id"]].append(ann)
    return anns


def _class_names(dataset: dict) -> list[str]:
    return [str(c.get("name", c["id"])) for c in sorted(dataset["categories"], key=lambda c: c["id"])]


def write_coco(out: Path, splits: dict) -> None:
    for name, (dataset, image_dir) in splits.items():
        files = _unique_names([img["file_name"] for img in dataset["images"]])
        images = []
        for img, file in zip(dataset["images"], files):
            _place(image_dir / img["file_name"], out / name / file)
            images.append({"id": img["id"], "file_name": file, "width": img["width"], "height": img["height"]})
        anns = [
            {
                "id": a["id"],
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox": list(a["bbox"]),
                "area": a.get("area", a["bbox"][2] * a["bbox"][3]),
                "iscrowd": int(bool(a.get("iscrowd", 0))),
            }
            for a in dataset["annotations"]
        ]
        categories = [{"id": c["id"], "name": str(c.get("name", c["id"]))} for c in dataset["categories"]]
        (out / "annotations").mkdir(parents=True, exist_ok=True)
        (out / "annotations" / f"{name}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": categories})
        )


def write_yolo(out: Path, splits: dict) -> None:
    skipped = [name for name in splits if name not in ("train", "val", "test")]
    if skipped:
        log.warning("YOLO's data.yaml has only train, val and test: split(s) %s not written", ", ".join(skipped))
    names, crowd = None, 0
    for name, (dataset, image_dir) in splits.items():
        if name in skipped:
            continue
        names = names or _class_names(dataset)
        label_of = {c["id"]: k for k, c in enumerate(sorted(dataset["categories"], key=lambda c: c["id"]))}
        anns = _by_image(dataset)
        for img, file in zip(dataset["images"], _unique_names([img["file_name"] for img in dataset["images"]])):
            _place(image_dir / img["file_name"], out / "images" / name / file)
            w, h, lines = img["width"], img["height"], []
            for a in anns[img["id"]]:
                if a.get("iscrowd", 0):
                    crowd += 1
                    continue
                x, y, bw, bh = a["bbox"]
                values = ((x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h)
                lines.append(f"{label_of[a['category_id']]} " + " ".join(f"{v:.6f}" for v in values))
            label = out / "labels" / name / f"{Path(file).stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(line + "\n" for line in lines))
    if crowd:
        log.warning("%d crowd/difficult box(es) not written: YOLO has no ignore flag", crowd)
    data: dict[str, object] = {name: f"images/{name}" for name in splits if name not in skipped}
    data["names"] = dict(enumerate(names or []))
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_voc(out: Path, splits: dict) -> None:
    every = [(dataset, image_dir, img) for dataset, image_dir in splits.values() for img in dataset["images"]]
    sources = list(dict.fromkeys((image_dir / img["file_name"]).resolve() for _, image_dir, img in every))
    # an image in several splits: one file; stems that clash take their path below the sources' common
    # folder (never this machine's absolute path); no whitespace, which ImageSets lines cannot hold
    common = Path(os.path.commonpath([str(p.parent) for p in sources])) if sources else Path()
    relative = [re.sub(r"\s", "_", str(p.relative_to(common))) for p in sources]
    names_of = dict(zip(sources, _unique_names(relative)))
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for name, (dataset, image_dir) in splits.items():
        class_of = {c["id"]: str(c.get("name", c["id"])) for c in dataset["categories"]}
        anns, ids = _by_image(dataset), []
        for img in dataset["images"]:
            source = (image_dir / img["file_name"]).resolve()
            file = names_of[source]
            ids.append(Path(file).stem)
            if not (out / "JPEGImages" / file).exists():
                _place(source, out / "JPEGImages" / file)
                _voc_xml(file, img, anns[img["id"]], class_of).write(
                    out / "Annotations" / f"{Path(file).stem}.xml", encoding="utf-8"
                )
        (out / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(i + "\n" for i in ids))


def _voc_xml(file: str, img: dict, anns: list[dict], class_of: dict) -> ET.ElementTree:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = file
    size = ET.SubElement(root, "size")
    for tag, v in (("width", img["width"]), ("height", img["height"]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(int(v))
    for a in anns:
        x, y, w, h = a["bbox"]
        xmin, ymin = math.floor(x + 0.5) + 1, math.floor(y + 0.5) + 1
        xmax, ymax = max(math.floor(x + w + 0.5), xmin), max(math.floor(y + h + 0.5), ymin)
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_of[a["category_id"]]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(int(bool(a.get("iscrowd", 0))))
        box = ET.SubElement(obj, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax)):
            ET.SubElement(box, tag).text = str(v)
    ET.indent(root)
    return ET.ElementTree(root)
