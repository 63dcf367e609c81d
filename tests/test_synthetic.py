"""The generated shapes dataset: deterministic, cached, valid COCO with boxes inside the images."""

import contextlib
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from sparse_rcnn.data.synthetic import CLASSES, SyntheticSpec, generate

SPEC = SyntheticSpec(num_train=12, num_val=4, image_size=64, min_size=8, max_size=30)


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("shapes"), SPEC)


def test_same_seed_same_bytes_other_seed_other_pixels(data, tmp_path):
    again = generate(tmp_path / "again", SPEC)
    assert _digest(again.root) == _digest(data.root)
    other = generate(tmp_path / "other", SyntheticSpec(**{**SPEC.__dict__, "seed": 1}))
    assert (other.train_images / "000000.png").read_bytes() != (data.train_images / "000000.png").read_bytes()


def test_reuses_matching_cache_and_regenerates_on_new_parameters(data, tmp_path):
    root = generate(tmp_path / "c", SPEC).root
    probe = root / "train" / "000000.png"
    stamp = probe.stat().st_mtime_ns
    generate(root, SPEC)
    assert probe.stat().st_mtime_ns == stamp  # reused, not rewritten
    bigger = generate(root, SyntheticSpec(**{**SPEC.__dict__, "num_val": 6}))
    assert len(json.loads(bigger.val_ann.read_text())["images"]) == 6
    assert json.loads((root / "synthetic.json").read_text())["num_val"] == 6


def test_interrupted_generation_is_not_reused(tmp_path):
    paths = generate(tmp_path / "i", SPEC)
    (paths.root / "synthetic.json").unlink()  # as if killed before the marker was written
    (paths.train_images / "000003.png").write_bytes(b"truncated")
    generate(paths.root, SPEC)
    Image.open(paths.train_images / "000003.png").verify()


@pytest.mark.parametrize("split", ["train", "val"])
def test_valid_coco_with_boxes_inside_images(data, split):
    ann = getattr(data, f"{split}_ann")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ann))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    images = coco.loadImgs(coco.getImgIds())
    assert len(images) == getattr(SPEC, f"num_{split}")
    for info in images:
        pixels = np.asarray(Image.open(getattr(data, f"{split}_images") / info["file_name"]))
        assert pixels.shape == (info["height"], info["width"], 3) and pixels.dtype == np.uint8
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
        assert SPEC.min_objects <= len(anns) <= SPEC.max_objects
        for a in anns:
            x, y, w, h = a["bbox"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0
            assert x + w <= info["width"] and y + h <= info["height"]
            assert 0 < a["area"] <= w * h and a["iscrowd"] == 0
            assert a["category_id"] in coco.getCatIds()


def test_chosen_classes_name_the_categories_and_draw_only_those(tmp_path):
    classes = ("ellipse", "rectangle", "triangle", "star")
    data = generate(tmp_path / "star", SyntheticSpec(**{**SPEC.__dict__, "classes": classes}))
    coco = json.loads(data.train_ann.read_text())
    assert [c["name"] for c in coco["categories"]] == list(classes) and data.class_names == classes
    assert {a["category_id"] for a in coco["annotations"]} == {1, 2, 3, 4}
    assert json.loads((data.root / "synthetic.json").read_text())["classes"] == list(classes)
    # the default spec's marker has no `classes` entry, so the demo's files stay byte-identical
    assert "classes" not in json.loads((generate(tmp_path / "d", SPEC).root / "synthetic.json").read_text())
    with pytest.raises(ValueError, match="hexagon"):
        generate(tmp_path / "bad", SyntheticSpec(classes=("ellipse", "hexagon")))
