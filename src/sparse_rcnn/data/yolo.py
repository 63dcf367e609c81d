"""YOLO datasets (Ultralytics layout): ``data.yaml`` + ``images/`` + ``labels/``, read into COCO form.

``data.yaml`` names the classes (``names:`` a list, or a dict 0..C-1 -> name; their order is the
label order) and the splits (``train:``, ``val:``, ``test:``: a folder of images, a .txt list of
image paths, or a list of those), relative to ``path:`` (default: the yaml's folder). As in
Ultralytics, a relative entry that does not exist but starts with ``../`` is also looked for
without it (Roboflow's exports), the label file of ``.../images/.../x.jpg`` is
``.../labels/.../x.txt``, and in a list file ``./x.jpg`` is relative to the list (other relative
lines: to the dataset root). An image without a label file, or with an empty one, has no objects.

A label line is ``class x_center y_center width height``, normalised by the image's displayed
size (read from the file header, EXIF orientation applied), or a segmentation polygon
``class x1 y1 x2 y2 ...`` whose bounding box is taken. The COCO box is
``x = (x_center - width / 2) * W``, ``w = width * W`` (and the same for y, h).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Union

import yaml

from .images import IMAGE_EXTENSIONS, ImageError, image_size
from .split import YOLO_FILES, DatasetSplit
from .text import load_yaml, read_text
from .validation import BORDER_TOLERANCE, AnnotationProblem, DataError

_SPLITS = ("train", "val", "test")
_FIELDS = ("x_center", "y_center", "width", "height")


def yolo_yaml(path: Union[str, Path]) -> Path:
    """The data.yaml of ``path`` (a yaml file, or a folder holding one of ``YOLO_FILES``)."""
    p = Path(path)
    if p.is_dir():
        found = [p / name for name in YOLO_FILES if (p / name).is_file()]
        if not found:
            raise DataError(f"{p}: no {YOLO_FILES[0]} in this folder")
        return found[0]
    if not p.is_file():
        raise DataError(f"dataset file {str(p)!r} not found")
    return p


def read_data_yaml(path: Union[str, Path]) -> tuple[Path, list[str], dict]:
    """(dataset root, class names, the data.yaml's split entries by name) of a YOLO dataset."""
    file = yolo_yaml(path)
    try:
        raw = load_yaml(read_text(file))
    except yaml.YAMLError as e:
        raise DataError(f"{file} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{file} must hold a mapping with `names` and the splits (train, val, ...)")
    names = _names(raw.get("names"), file)
    if "nc" in raw and raw["nc"] != len(names):
        raise DataError(f"{file}: nc is {raw['nc']!r} but names lists {len(names)} classes")
    root = Path(raw["path"]) if raw.get("path") else file.parent
    if not root.is_absolute():
        root = file.parent / root
    splits = {k: raw[k] for k in _SPLITS if raw.get(k)}
    return root, names, splits


def _names(names, file: Path) -> list[str]:
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    if isinstance(names, dict) and names:
        keys = sorted(names, key=lambda k: (not isinstance(k, int), k if isinstance(k, int) else 0))
        if keys != list(range(len(names))):
            raise DataError(f"{file}: the keys of names must be 0..{len(names) - 1}, got {sorted(map(str, names))}")
        return [str(names[k]) for k in keys]
    raise DataError(f"{file}: no class names; add `names:` as a list, or a mapping 0: first, 1: second, ...")


def yolo_split_names(path: Union[str, Path]) -> list[str]:
    return list(read_data_yaml(path)[2])


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _resolve(root: Path, entry: str) -> Path:
    p = Path(entry)
    if p.is_absolute():
        return p
    if not (root / p).exists() and entry.startswith("../") and (root / entry[3:]).exists():
        return root / entry[3:]
    return root / p


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _split_images(root: Path, entries, file: Path, split: str) -> tuple[list[Path], list[Path]]:
    """Image paths of a split, in order, and the folders it names (for orphan label files)."""
    images, folders = [], []
    for entry in entries if isinstance(entries, list) else [entries]:
        p = _resolve(root, str(entry))
        if p.is_dir():
            folders.append(p)
            images += sorted(q for q in p.rglob("*") if _is_image(q) and q.is_file())
        elif p.is_file() and p.suffix.lower() == ".txt":
            for line in read_text(p).splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    images.append(p.parent / line[2:] if line.startswith("./") else _resolve(root, line))
        elif p.is_file() and _is_image(p):
            images.append(p)
        else:
            raise DataError(f"{file}: the {split!r} split names {str(p)!r}, which is not a folder, image or .txt list")
    return list(dict.fromkeys(images)), folders


def read_yolo(path: Union[str, Path], split: str = "train") -> DatasetSplit:
    """One split (a key of data.yaml) of a YOLO dataset as a ``DatasetSplit``."""
    file = yolo_yaml(path)
    root, names, splits = read_data_yaml(file)
    if split not in splits:
        raise DataError(f"{file} has no {split!r} split (it has: {', '.join(splits) or 'none'})")
    images, folders = _split_images(root, splits[split], file, split)
    source = f"{file} ({split})"
    problems: list[AnnotationProblem] = []
    locations: dict = {}
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image in images:
        label = label_path(image)
        shown_label = _shown(label, root)
        try:
            width, height = image_size(image)
        except ImageError as e:
            problems.append(AnnotationProblem(_shown(image, root), None, None, str(e).split(": ", 1)[-1], where=""))
            continue
        image_id = len(coco_images) + 1
        coco_images.append({"id": image_id, "file_name": _shown(image, root), "width": width, "height": height})
        locations[("image", image_id)] = (shown_label, "")
        if not label.is_file():
            continue  # no label file: no objects
        try:
            text = read_text(label)
        except DataError as e:  # not UTF-8: a problem of this file
            problems.append(AnnotationProblem(shown_label, None, None, str(e).split(": ", 1)[-1], where=""))
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            box, problem = parse_line(line, len(names), width, height, file.name)
            if problem:
                problems.append(AnnotationProblem(shown_label, None, None, problem, where=f"line {number}"))
                continue
            ann_id = len(annotations) + 1
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": box[0] + 1,
                    "bbox": list(box[1:]),
                    "area": box[3] * box[4],
                    "iscrowd": 0,
                }
            )
            locations[("ann", ann_id)] = (shown_label, f"line {number}")
    problems += _orphans(folders, images, root)
    dataset = {
        "images": coco_images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)],
    }
    return DatasetSplit(
        dataset, root, source, "yolo", problems, locations, reload=functools.partial(read_yolo, file, split)
    )


def parse_line(line: str, num_classes: int, width: int, height: int, yaml_name: str):
    """``(class, x, y, w, h)`` in pixels (COCO xywh) of one label line, or ``(None, problem)``."""
    values = line.split()
    n = len(values)
    if n != 5 and not (n >= 7 and n % 2 == 1):
        return None, f"expected `class x_center y_center width height` (5 values) or a polygon, got {n} value(s)"
    try:
        cls = float(values[0])
        numbers = [float(v) for v in values[1:]]
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        return None, f"{bad!r} is not a number"
    if not math.isfinite(cls) or cls != int(cls):
        return None, f"class {values[0]} is not an integer"
    cls = int(cls)
    if not 0 <= cls < num_classes:
        return None, f"class {cls} is not among the {num_classes} names of {yaml_name} (0..{num_classes - 1})"
    if n > 5:  # a segmentation polygon: its bounding box
        xs, ys = numbers[0::2], numbers[1::2]
        if not all(0 <= v <= 1 for v in numbers):
            return None, "polygon point outside 0..1 (coordinates must be normalised by the image size)"
        cx, cy, w, h = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)
    else:
        cx, cy, w, h = numbers
        for name, v in zip(_FIELDS[:2], (cx, cy)):
            if not 0 <= v <= 1:
                return None, f"{name} {v:g} is outside 0..1 (coordinates must be normalised by the image size)"
        for name, v in zip(_FIELDS[2:], (w, h)):
            if not 0 < v <= 1:
                return None, f"{name} {v:g} is not in (0, 1]"
    x, y, bw, bh = (cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height
    t = BORDER_TOLERANCE
    if x < -t or y < -t or x + bw > width + t or y + bh > height + t:
        return None, (
            f"the box spans x {cx - w / 2:.4g}..{cx + w / 2:.4g}, y {cy - h / 2:.4g}..{cy + h / 2:.4g}, "
            "beyond the image (0..1)"
        )
    return (cls, x, y, bw, bh), None


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _orphans(folders: list[Path], images: list[Path], root: Path) -> list[AnnotationProblem]:
    """Label files in a split folder's ``labels`` twin that no image of the split owns."""
    owned = {label_path(i) for i in images}
    problems = []
    for folder in folders:
        labels = label_path(folder / "x.jpg").parent
        if labels == folder or not labels.is_dir():
            continue
        for txt in sorted(labels.rglob("*.txt")):
            if txt not in owned and txt.name != "classes.txt":  # LabelImg writes classes.txt among the labels
                twin = _shown(folder / txt.parent.relative_to(labels), root)
                problems.append(
                    AnnotationProblem(
                        _shown(txt, root),
                        None,
                        None,
                        f"label file without an image (no {txt.stem}.* in {twin})",
                        where="",
                    )
                )
    return problems


def _shown(p: Path, root: Path) -> str:
    """``p`` relative to the dataset root when inside it (messages, COCO ``file_name``)."""
    try:
        rel = os.path.relpath(p, root)
    except ValueError:  # another drive (Windows)
        return str(p)
    return str(p.resolve()) if rel.startswith("..") else Path(rel).as_posix()
