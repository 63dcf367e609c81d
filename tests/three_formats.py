"""One hand-made dataset written as COCO, YOLO and Pascal VOC, each by hand here (not by the
converter under test), for the tests that the three readers agree.

Boxes are whole pixels (VOC cannot hold fractions) on 128 x 128 images, so YOLO's normalised
values (k / 256) are exact binary fractions and every format holds the same boxes exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SIZE = 128


def write_three_formats(
    root: Path, images: list[np.ndarray], objects: list[list[tuple]], class_names: list[str], split: str = "val"
) -> dict[str, Path]:
    """``objects[i]``: ``(label, x1, y1, x2, y2)`` (ints, continuous pixels) of image i, optionally
    with a 6th item ``difficult`` (COCO ``iscrowd``; YOLO cannot say it, so such boxes are left out
    of YOLO). Returns the path to give each reader: COCO json, YOLO data.yaml, VOC folder."""
    paths = {"coco": root / "coco" / "annotations.json", "yolo": root / "yolo" / "data.yaml", "voc": root / "voc"}
    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)],
    }
    for folder in (
        "coco",
        f"yolo/images/{split}",
        f"yolo/labels/{split}",
        "voc/Annotations",
        "voc/JPEGImages",
        "voc/ImageSets/Main",
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i, (pixels, objs) in enumerate(zip(images, objects)):
        name = f"img{i}.png"
        h, w = pixels.shape[:2]
        for folder in ("coco", f"yolo/images/{split}", "voc/JPEGImages"):
            Image.fromarray(pixels).save(root / folder / name)
        coco["images"].append({"id": i + 1, "file_name": name, "width": w, "height": h})
        lines, xml = (
            [],
            [
                f"<annotation><filename>{name}</filename>"
                f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"
            ],
        )
        for label, x1, y1, x2, y2, *rest in objs:
            difficult = int(rest[0]) if rest else 0
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": difficult,
                }
            )
            if not difficult:
                lines.append(
                    f"{label} {repr((x1 + x2) / 2 / w)} {repr((y1 + y2) / 2 / h)} "
                    f"{repr((x2 - x1) / w)} {repr((y2 - y1) / h)}"
                )
            xml.append(
                f"<object><name>{class_names[label]}</name><difficult>{difficult}</difficult><bndbox>"
                f"<xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            )
        (root / f"yolo/labels/{split}/img{i}.txt").write_text("".join(line + "\n" for line in lines))
        (root / f"voc/Annotations/img{i}.xml").write_text("".join(xml) + "</annotation>\n")
    paths["coco"].write_text(json.dumps(coco))
    (root / "yolo" / "data.yaml").write_text(yaml.safe_dump({split: f"images/{split}", "names": list(class_names)}))
    (root / "voc" / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"img{i}\n" for i in range(len(images))))
    return paths
