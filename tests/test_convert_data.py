"""`sparse-rcnn convert-data`: round trips between COCO, YOLO and Pascal VOC keep boxes, names and
sizes; existing data is never written over."""

import json
import logging
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.data import DataError
from sparse_rcnn.data.convert import convert_dataset

NAMES = ["bird", "car", "person"]


def _coco(root, crowd=False):
    """Fractional boxes on images of odd sizes, every class present."""
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir(parents=True)
    images, anns = [], []
    for i, (h, w) in enumerate([(97, 150), (240, 61), (333, 500)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "imgs" / f"photo{i}.jpg")
        images.append({"id": 10 + i, "file_name": f"photo{i}.jpg", "width": w, "height": h})
        for k in range(4):
            bw, bh = rng.uniform(3, w / 2), rng.uniform(3, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": 10 + i,
                    "category_id": 5 + (i + k) % 3,
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": int(crowd and k == 3),
                }
            )
    cats = [{"id": 5 + k, "name": n} for k, n in enumerate(NAMES)]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root / "ann.json"


def _boxes(ann_file):
    data = json.loads(ann_file.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    files = {i["id"]: (i["file_name"], i["width"], i["height"]) for i in data["images"]}
    return sorted(
        (files[a["image_id"]], names[a["category_id"]], a["bbox"], a.get("iscrowd", 0)) for a in data["annotations"]
    )


def _xyxy(boxes):
    b = np.array([box[2] for box in boxes])
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def test_coco_to_yolo_to_voc_to_coco_keeps_boxes_within_half_a_pixel_and_all_names(tmp_path):
    src = _coco(tmp_path / "src")
    assert (
        cli.main(
            ["convert-data", str(src), "--images", str(src.parent / "imgs"), "--to", "yolo", str(tmp_path / "yolo")]
        )
        == 0
    )
    assert cli.main(["convert-data", str(tmp_path / "yolo" / "data.yaml"), "--to", "voc", str(tmp_path / "voc")]) == 0
    assert cli.main(["convert-data", str(tmp_path / "voc"), "--to", "coco", str(tmp_path / "coco")]) == 0
    assert yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())["names"] == dict(enumerate(NAMES))
    before, after = _boxes(src), _boxes(tmp_path / "coco" / "annotations" / "train.json")
    assert [b[:2] for b in after] == [b[:2] for b in before]  # the same images (name, size) and class names
    err = np.abs(_xyxy(after) - _xyxy(before))
    assert err.max() <= 0.5 + 1e-3  # VOC: whole pixels (0.5); YOLO: 6 decimals (5e-7 of the image size)
    assert err.max() > 0.1  # (the boxes were fractional: rounding did happen)
    assert (tmp_path / "coco" / "train" / "photo2.jpg").read_bytes() == (
        src.parent / "imgs" / "photo2.jpg"
    ).read_bytes()


def test_yolo_keeps_boxes_to_six_decimals_and_voc_writes_one_based_pixels(tmp_path):
    src = _coco(tmp_path / "src")
    convert_dataset(src, tmp_path / "yolo", "yolo", images=src.parent / "imgs")
    convert_dataset(tmp_path / "yolo", tmp_path / "coco", "coco")
    before, after = _boxes(src), _boxes(tmp_path / "coco" / "annotations" / "train.json")
    sizes = np.array([b[0][1:] for b in before], dtype=float)
    err = np.abs(_xyxy(after) - _xyxy(before))
    assert (err <= 7.5e-7 * np.concatenate([sizes, sizes], 1) + 1e-9).all()  # centre 5e-7 + half the size 2.5e-7
    convert_dataset(src, tmp_path / "voc", "voc", images=src.parent / "imgs")
    obj = ET.parse(tmp_path / "voc" / "Annotations" / "photo0.xml").getroot().find("object/bndbox")
    x, y, w, h = json.loads(src.read_text())["annotations"][0]["bbox"]
    assert [int(obj.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")] == [
        round(x) + 1,
        round(y) + 1,
        round(x + w),
        round(y + h),
    ]


def test_crowd_boxes_become_difficult_in_voc_and_are_left_out_of_yolo(tmp_path, caplog):
    src = _coco(tmp_path / "src", crowd=True)
    convert_dataset(src, tmp_path / "voc", "voc", images=src.parent / "imgs")
    convert_dataset(tmp_path / "voc", tmp_path / "coco", "coco")
    assert [b[3] for b in _boxes(tmp_path / "coco" / "annotations" / "train.json")] == [b[3] for b in _boxes(src)]
    with caplog.at_level(logging.WARNING):
        convert_dataset(src, tmp_path / "yolo", "yolo", images=src.parent / "imgs")
    assert "3 crowd/difficult box(es) not written" in caplog.text
    assert sum(len(p.read_text().splitlines()) for p in (tmp_path / "yolo" / "labels" / "train").glob("*.txt")) == 9


def test_existing_output_is_never_written_over(tmp_path, caplog):
    src = _coco(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="already exists and is not an empty folder"):
        convert_dataset(src, out, "yolo", images=src.parent / "imgs")
    assert cli.main(["convert-data", str(src), "--images", str(src.parent / "imgs"), "--to", "voc", str(out)]) == 2
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left behind
