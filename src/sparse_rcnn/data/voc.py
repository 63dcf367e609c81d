"""Pascal VOC datasets (the devkit's layout), read into COCO form.

``<root>/Annotations/<id>.xml``, ``<root>/JPEGImages/<id>.jpg`` and the splits as lists of ids in
``<root>/ImageSets/Main/<split>.txt`` (without ``ImageSets/Main``, every XML is in ``train``).
The image is ``JPEGImages/<filename>`` when the XML's ``<filename>`` names a file there, else
``JPEGImages/<id>`` with any image suffix; its size is ``<size>`` (the file header's if absent or 0).

Boxes are the devkit's 1-based, inclusive pixel indices, read as detectron2 does:
``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` in continuous pixels, so a box of one pixel
is 1 px wide. (MMDetection subtracts 1 from all four and adds 1 back when it measures widths; the
boxes are the same.) ``<difficult>1`` objects become COCO ``iscrowd`` boxes: left out of training
targets and ignored by evaluation, as MMDetection's VOC dataset and ``VOCMetric`` treat them.

Classes are the sorted (Python string order) ``<name>``s of all XMLs in ``Annotations/``, whatever
the split, so every split of a dataset has the same labels; for VOC's 20 classes this is VOC's
standard order (aeroplane, bicycle, ..., tvmonitor), the one MMDetection and detectron2 use.
A class list wins over the XMLs, in its own order: ``classes`` (``data.classes``: a list, or a
file of names), else ``<root>/labelmap.txt`` (CVAT's and Datumaro's VOC exports:
``name:color:parts:actions`` lines, ``#`` comments, ``background`` left out); an object whose
``<name>`` it lacks is a problem of its XML.
"""

from __future__ import annotations

import functools
import logging
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .images import IMAGE_EXTENSIONS, ImageError, image_size
from .split import DatasetSplit
from .text import read_text
from .validation import BORDER_TOLERANCE, AnnotationProblem, DataError

_CORNERS = ("xmin", "ymin", "xmax", "ymax")
log = logging.getLogger(__name__)


def voc_split_names(root: Union[str, Path]) -> list[str]:
    """The lists in ImageSets/Main (class lists like ``dog_train.txt`` left out), or ``["train"]``."""
    main = Path(root) / "ImageSets" / "Main"
    stems = sorted(p.stem for p in main.glob("*.txt")) if main.is_dir() else []
    splits = [s for s in stems if not ("_" in s and s.rsplit("_", 1)[1] in stems)]
    return splits or ["train"]


def _parse(xml: Path) -> ET.Element:
    try:
        return ET.parse(xml).getroot()
    except ET.ParseError as e:
        line, column = e.position
        raise DataError(f"is not valid XML (line {line}, column {column}: {str(e).split(':')[0]})") from None
    except OSError as e:
        raise DataError(f"cannot be read ({e.strerror or e})") from None


def voc_class_names(root: Union[str, Path]) -> list[str]:
    """Sorted ``<name>``s of every XML in ``Annotations/`` (unreadable files are reported by ``read_voc``)."""
    names: set[str] = set()
    for xml in Path(root, "Annotations").glob("*.xml"):
        try:
            names.update(n.text.strip() for n in _parse(xml).iter("name") if n.text and n.text.strip())
        except DataError:
            continue
    return sorted(names)


def read_class_list(path: Union[str, Path]) -> list[str]:
    """The class names of a ``labelmap.txt`` or a plain names file (one name per line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"class list {str(path)!r} cannot be read ({getattr(e, 'strerror', None) or e})") from None
    names = [line.split(":", 1)[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    names = [n for n in names if n and n != "background"]
    if not names or len(set(names)) != len(names):
        raise DataError(f"class list {str(path)!r} holds {'no names' if not names else 'a name twice'}")
    return names


def voc_classes(root: Path, classes: Optional[Sequence[str]] = None) -> tuple[list[str], Optional[str]]:
    """The classes of a VOC dataset and where they come from (None: the XMLs)."""
    if classes:
        return list(classes), "`data.classes`"
    if (root / "labelmap.txt").is_file():
        return read_class_list(root / "labelmap.txt"), "labelmap.txt"
    return voc_class_names(root), None


def _split_ids(root: Path, split: str) -> tuple[list[str], str]:
    main = root / "ImageSets" / "Main"
    if not main.is_dir():
        if split != "train":
            raise DataError(
                f"{root} has no ImageSets/Main/{split}.txt (no ImageSets/Main at all: every XML is in 'train')"
            )
        return sorted(p.stem for p in (root / "Annotations").glob("*.xml")), f"{root} (all of Annotations/)"
    listing = main / f"{split}.txt"
    if not listing.is_file():
        raise DataError(f"{root} has no {split!r} split (ImageSets/Main holds: {', '.join(voc_split_names(root))})")
    ids = [line.split()[0] for line in read_text(listing).splitlines() if line.strip()]
    return list(dict.fromkeys(ids)), f"{root} ({split})"


def read_voc(root: Union[str, Path], split: str = "train", classes: Optional[Sequence[str]] = None) -> DatasetSplit:
    """One split of a Pascal VOC folder as a ``DatasetSplit`` (``classes``: see the module's doc)."""
    root = Path(root)
    if not (root / "Annotations").is_dir():
        raise DataError(f"{root}: not a Pascal VOC folder (no Annotations/)")
    ids, source = _split_ids(root, split)
    names, class_list = voc_classes(root, classes)
    label_of = {n: k for k, n in enumerate(names)}
    problems: list[AnnotationProblem] = []
    renamed: list[str] = []  # XMLs whose <filename> is not in JPEGImages/, read from <id>.<suffix> instead
    locations: dict = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_key in ids:
        xml = f"Annotations/{image_key}.xml"

        def bad(problem: str, where: str = "", xml: str = xml) -> None:
            problems.append(AnnotationProblem(xml, None, None, problem, where=where))

        if not (root / xml).is_file():
            bad(f"not found (listed in ImageSets/Main/{split}.txt)")
            continue
        try:
            tree = _parse(root / xml)
        except DataError as e:
            bad(str(e))
            continue
        filename = _text(tree, "filename")
        image = _image_file(root, image_key, filename)
        if image is not None and filename and image != filename:
            renamed.append(f"{xml}: {filename!r} -> {image!r}")
        if image is None:
            bad(f"no image {image_key}.jpg (or another image suffix) in JPEGImages/")
            continue
        size = _size(tree)
        if size is None:
            try:
                size = image_size(root / "JPEGImages" / image)
            except ImageError as e:
                bad(f"no <size>, and the image cannot be read: {e}")
                continue
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": image, "width": size[0], "height": size[1]})
        locations[("image", image_id)] = (xml, "")
        for k, obj in enumerate(tree.iter("object"), 1):
            name = _text(obj, "name")
            where = f"object {k}" + (f" ({name})" if name else "")
            box, problem = _box(obj, size)
            difficult = _text(obj, "difficult") or "0"
            if not name:
                problem = "no <name>"
            elif name not in label_of:
                problem = (
                    f"class {name!r} is not in {class_list} ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
                )
            elif difficult not in ("0", "1"):
                problem = f"<difficult> must be 0 or 1, got {difficult!r}"
            if problem:
                bad(problem, where)
                continue
            assert name is not None  # else "no <name>" above
            ann_id = len(annotations) + 1
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": label_of[name] + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(difficult),
                }
            )
            locations[("ann", ann_id)] = (xml, where)
    if renamed:
        log.warning(
            "%s: %d <filename>(s) name no file in JPEGImages/; the image named after the XML is used instead: %s%s",
            source,
            len(renamed),
            "; ".join(renamed[:3]),
            " ..." if len(renamed) > 3 else "",
        )
    dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)],
    }
    return DatasetSplit(
        dataset,
        root / "JPEGImages",
        source,
        "voc",
        problems,
        locations,
        reload=functools.partial(read_voc, root, split, classes),
    )


def _text(node: ET.Element, tag: str) -> Optional[str]:
    found = node.find(tag)
    return found.text.strip() if found is not None and found.text is not None else None


def _image_file(root: Path, image_key: str, filename: Optional[str]) -> Optional[str]:
    folder = root / "JPEGImages"
    if filename and (folder / filename).is_file():
        return filename
    for suffix in [".jpg", *sorted(IMAGE_EXTENSIONS - {".jpg"})]:
        for candidate in (image_key + suffix, image_key + suffix.upper()):
            if (folder / candidate).is_file():
                return candidate
    return None


def _size(tree: ET.Element) -> Optional[tuple[int, int]]:
    try:
        w, h = (int(float(_text(tree, f"size/{tag}") or 0)) for tag in ("width", "height"))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def _box(obj: ET.Element, size: tuple[int, int]):
    """``(x1, y1, x2, y2)`` in continuous pixels of an ``<object>``, or ``(None, problem)``."""
    if obj.find("bndbox") is None:
        return None, "no <bndbox>"
    values = {}
    for tag in _CORNERS:
        text = _text(obj, f"bndbox/{tag}")
        if text is None:
            return None, f"no <{tag}> in <bndbox>"
        try:
            values[tag] = float(text)
        except ValueError:
            return None, f"<{tag}> {text!r} is not a number"
        if not math.isfinite(values[tag]):
            return None, f"<{tag}> {text!r} is not a finite number"
    xmin, ymin, xmax, ymax = (values[t] for t in _CORNERS)
    w, h, t = size[0], size[1], BORDER_TOLERANCE
    for lo, hi, low, high in (("xmin", "xmax", xmin, xmax), ("ymin", "ymax", ymin, ymax)):
        if high < low:
            return None, f"{hi} {high:g} is less than {lo} {low:g}"
    if xmin - 1 < -t or ymin - 1 < -t:
        return None, f"xmin/ymin {xmin:g}/{ymin:g} lie outside the image (VOC pixels start at 1)"
    if xmax > w + t or ymax > h + t:
        return None, f"xmax/ymax {xmax:g}/{ymax:g} lie outside the {w}x{h} image"
    return (xmin - 1, ymin - 1, xmax, ymax), None
