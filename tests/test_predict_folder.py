"""Batch prediction: folders and list files, worker processes, COCO results output."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.checkpoints import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
from sparse_rcnn.evaluation import coco_category_ids
from tiny import save_tiny_checkpoint

CLASSES = ["circle", "square", "star"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    save_tiny_checkpoint(root / "tiny.pth", CLASSES)
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(90, 120), (150, 70), (64, 64), (100, 100), (80, 130)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return root, folder


def _predict(root, *args):
    out = root / "out.json"
    status = cli.main(["predict", *args, "--weights", str(root / "tiny.pth"), "--output", str(out)])
    return status, json.loads(out.read_text())


def test_list_file_keeps_order_and_workers_give_the_same_output(setup):
    root, folder = setup
    listing = root / "list.txt"
    listing.write_text(f"# a comment\n{folder}/img3.png\n\n{folder}/img0.png\n{folder}/img4.png\n")
    status, serial = _predict(root, f"@{listing}", "--batch-size", "2")
    assert status == 0
    assert [r["image"] for r in serial] == [f"{folder}/img{i}.png" for i in (3, 0, 4)]
    status, parallel = _predict(root, "--list", str(listing), "--batch-size", "2", "--workers", "2")
    assert status == 0 and parallel == serial


def test_winograd_mode_predicts_the_same_detections_up_to_rounding(setup):
    root, folder = setup
    status, plain = _predict(root, str(folder), "--batch-size", "2")
    assert status == 0
    status, fast = _predict(root, str(folder), "--batch-size", "2", "--winograd")
    assert status == 0 and [r["image"] for r in fast] == [r["image"] for r in plain]
    for a, b in zip(plain, fast):
        scores_a = np.array([d["score"] for d in a["detections"]])
        scores_b = np.array([d["score"] for d in b["detections"]])
        assert np.abs(scores_a - scores_b).max() < 1e-4


def test_coco_format_ids_by_index_with_a_failed_image_in_between(setup):
    root, folder = setup
    (root / "broken.png").write_bytes(b"not a png")
    listing = root / "list2.txt"
    listing.write_text(f"{folder}/img1.png\n{root}/broken.png\n{folder}/img2.png\n")
    status, results = _predict(root, f"@{listing}", "--format", "coco", "--batch-size", "2")
    assert status == 1  # one image failed; the others are written
    assert {r["image_id"] for r in results} == {0, 2}
    status, records = _predict(root, f"@{listing}", "--batch-size", "2")
    by_image = {0: records[0], 2: records[1]}
    for image_id, record in by_image.items():
        coco = [r for r in results if r["image_id"] == image_id]
        assert len(coco) == len(record["detections"])
        for c, d in zip(coco, record["detections"]):
            x1, y1, x2, y2 = d["box"]
            assert c["category_id"] == d["label"] + 1  # custom classes: label + 1
            assert c["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1]) and c["score"] == pytest.approx(d["score"])


def test_coco_format_takes_image_and_category_ids_from_the_annotation_file(setup):
    root, folder = setup
    ann = root / "ann.json"
    ann.write_text(json.dumps({
        "images": [{"id": 42, "file_name": "img0.png"}, {"id": 7, "file_name": "sub/img3.png"}],
        "categories": [{"id": 30, "name": "star"}, {"id": 10, "name": "circle"}, {"id": 20, "name": "square"}],
        "annotations": [],
    }))
    status, results = _predict(root, str(folder / "img0.png"), str(folder / "img3.png"), "--format", "coco", "--ann", str(ann))
    assert status == 0
    assert {r["image_id"] for r in results} == {42, 7}
    assert {r["category_id"] for r in results} <= {10, 20, 30}
    status, _ = _predict(root, str(folder / "img1.png"), "--format", "coco", "--ann", str(ann))
    assert status == 1  # not in the annotation file: reported, not guessed


def test_zoo_classes_get_the_coco_category_ids():
    assert coco_category_ids(list(COCO_CLASS_NAMES)) == (list(COCO_CATEGORY_IDS), None)
    assert coco_category_ids(CLASSES) == ([1, 2, 3], None)
    assert COCO_CATEGORY_IDS[-1] == 90 and 12 not in COCO_CATEGORY_IDS and len(set(COCO_CATEGORY_IDS)) == 80
