"""COCO-format dataset: label mapping, filtering, validation report and policies, decoding, seeding."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn.data import CocoDetection, DataError, collate
from sparse_rcnn.data.transforms import build_train_transform


def write_coco(root, images, annotations, categories=None, *, write_files=True):
    """images: [(id, w, h)], annotations: [(id, image_id, category_id, [x, y, w, h], extra dict)]."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    categories = categories or [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    if write_files:
        for iid, w, h in dict((iid, (iid, w, h)) for iid, w, h in reversed(images)).values():  # first entry wins
            rng = np.random.default_rng(iid)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "img" / f"{iid}.png")
    data = {
        "images": [{"id": iid, "file_name": f"{iid}.png", "width": w, "height": h} for iid, w, h in images],
        "annotations": [
            {"id": aid, "image_id": iid, "category_id": cid, "bbox": box, "area": _area(box), "iscrowd": 0, **extra}
            for aid, iid, cid, box, extra in annotations
        ],
        "categories": categories,
    }
    (root / "ann.json").write_text(json.dumps(data))
    return root / "ann.json", root / "img"


def _area(box):
    return box[2] * box[3] if len(box) == 4 and all(isinstance(v, (int, float)) for v in box) else 1.0


IMAGES = [(1, 48, 40), (2, 40, 48), (3, 48, 40)]
ANNS = [
    (10, 1, 2, [4.5, 5.0, 20.0, 10.25], {}),
    (11, 1, 1, [30.0, 2.0, 10.0, 30.0], {}),
    (12, 2, 2, [0.0, 0.0, 40.0, 48.0], {}),
]  # image 3 has no annotation


def test_labels_are_contiguous_by_category_id_and_map_back(tmp_path):
    cats = [{"id": 90, "name": "zebra"}, {"id": 3, "name": "car"}, {"id": 17, "name": "cat"}]
    anns = [(1, 1, 90, [1, 1, 10, 10], {}), (2, 1, 3, [2, 2, 10, 10], {}), (3, 2, 17, [3, 3, 10, 10], {})]
    ds = CocoDetection(*write_coco(tmp_path, IMAGES[:2], anns, cats), train=False)
    assert ds.cat_ids == [3, 17, 90] and ds.class_names == ["car", "cat", "zebra"]
    for i, image_id in enumerate(ds.image_ids):
        _, t = ds[i]
        raw = [a for a in anns if a[1] == image_id]
        assert [ds.cat_ids[label] for label in t["labels"].tolist()] == [a[2] for a in raw]


def test_boxes_are_xyxy_with_x2_equal_x_plus_w(tmp_path):
    ds = CocoDetection(*write_coco(tmp_path, IMAGES, ANNS), train=False)
    image, t = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 40, 48)
    assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
    assert t["boxes"].tolist() == [[4.5, 5.0, 24.5, 15.25], [30.0, 2.0, 40.0, 32.0]]
    assert t["labels"].tolist() == [1, 0] and t["image_id"] == 1
    assert t["orig_size"] == (40, 48) and t["scale_factor"] == (1.0, 1.0)
    assert ds.aspect_ratios() == [48 / 40, 40 / 48, 48 / 40]


def test_crowd_and_degenerate_boxes_stay_out_of_targets(tmp_path):
    anns = ANNS + [
        (13, 1, 1, [1.0, 1.0, 30.0, 30.0], {"iscrowd": 1}),
        (14, 3, 1, [1.0, 1.0, 9.0, 9.0], {"iscrowd": 1}),
        (15, 2, 1, [1.0, 1.0, 0.5, 9.0], {}),
        (16, 2, 1, [1.0, 1.0, 9.0, 9.0], {"area": 0}),
        (17, 2, 1, [1.0, 1.0, 9.0, 9.0], {"ignore": 1}),
    ]
    ds = CocoDetection(*write_coco(tmp_path, IMAGES, anns), transform=None)
    assert ds.problems == [] and ds.image_ids == [1, 2, 3]  # as MMDetection: a crowd-only image is kept
    assert [len(ds[i][1]["boxes"]) for i in range(3)] == [2, 1, 0]  # w < 1, area 0, ignore: left out silently
    assert len(ds.coco.getAnnIds(imgIds=[1], iscrowd=None)) == 3  # evaluation still sees the crowd box


def test_empty_and_small_images_skipped_in_training_kept_in_eval(tmp_path):
    images = IMAGES + [(4, 31, 60)]
    anns = ANNS + [(13, 4, 1, [1.0, 1.0, 9.0, 9.0], {})]
    ann, img = write_coco(tmp_path, images, anns)
    assert CocoDetection(ann, img).image_ids == [1, 2]
    assert CocoDetection(ann, img, filter_empty=False).image_ids == [1, 2, 3]
    assert CocoDetection(ann, img, min_size=0).image_ids == [1, 2, 4]
    assert CocoDetection(ann, img, train=False).image_ids == [1, 2, 3, 4]


BAD = {  # case -> (images, annotations, expected text of the problem)
    "missing file": ([(9, 20, 20)], [(20, 9, 1, [1, 1, 5, 5], {})], "image file '9.png' not found"),
    "nan box": ([], [(20, 1, 1, [1, float("nan"), 5, 5], {})], "NaN/inf"),
    "inf box": ([], [(20, 1, 1, [1, 1, float("inf"), 5], {})], "NaN/inf"),
    "zero width": ([], [(20, 1, 1, [1, 1, 0, 5], {})], "non-positive width/height"),
    "negative height": ([], [(20, 1, 1, [1, 1, 5, -2], {})], "non-positive width/height"),
    "outside": ([], [(20, 1, 1, [40, 1, 20, 5], {})], "lies outside the 48x40 image"),
    "unknown category": ([], [(20, 1, 7, [1, 1, 5, 5], {})], "unknown category id 7"),
    "duplicate annotation id": ([], [(10, 1, 1, [1, 1, 5, 5], {})], "duplicate annotation id"),
    "duplicate image id": ([(1, 20, 20)], [], "duplicate image id"),
    "unknown image": ([], [(20, 77, 1, [1, 1, 5, 5], {})], "refers to an image that is missing"),
    "not numbers": ([], [(20, 1, 1, [1, "2", 5, 5], {})], "bbox must be [x, y, w, h] numbers"),
    "not a box": ([], [(20, 1, 1, [1, 2, 5], {})], "bbox must be [x, y, w, h]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_annotations_are_reported_then_raised_or_skipped(tmp_path, case, caplog):
    extra_images, extra_anns, text = BAD[case]
    ann, img = write_coco(tmp_path, IMAGES + extra_images, ANNS + extra_anns)
    if case == "missing file":
        (img / "9.png").unlink()
    with pytest.raises(DataError) as err:
        CocoDetection(ann, img)
    msg = str(err.value)
    assert "1 problem(s)" in msg and text in msg and "bad_annotations=skip" in msg and str(ann) in msg
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(ann, img, bad_annotations="skip", train=False)
    assert len(ds.problems) == 1 and text in ds.problems[0].problem and "skipping 1" in caplog.text
    assert ds.image_ids == [1, 2, 3]  # the bad image / annotation is gone, the rest is intact
    assert [len(ds[i][1]["boxes"]) for i in range(3)] == [2, 1, 0]
    assert len(ds.coco.getAnnIds()) == 3


def test_box_slightly_outside_is_tolerated_and_clipped_by_the_pipeline(tmp_path):
    anns = [(1, 1, 1, [30.0, 1.0, 19.5, 40.5], {})]  # 1.5 px right and 0.5 px below the 48x40 image
    ds = CocoDetection(
        *write_coco(tmp_path, IMAGES[:1], anns), transform=build_train_transform(pipeline="1x", flip_prob=0.0)
    )
    image, t = ds[0]
    assert ds.problems == [] and t["boxes"][0, 2] == image.shape[2] and t["boxes"][0, 3] == image.shape[1]


@pytest.mark.parametrize(
    "content, text",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a COCO object"),
        ('{"images": []}', "no list 'annotations', 'categories'"),
    ],
)
def test_malformed_json_names_the_file(tmp_path, content, text):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(DataError, match=text) as err:
        CocoDetection(tmp_path / "bad.json", tmp_path)
    assert "bad.json" in str(err.value)


def test_empty_annotation_list_and_missing_paths(tmp_path):
    ann, img = write_coco(tmp_path, IMAGES, [])
    with pytest.raises(DataError, match="annotation list is empty"):
        CocoDetection(ann, img)
    with pytest.raises(DataError, match="no usable training images"):
        CocoDetection(ann, img, bad_annotations="skip")
    assert len(CocoDetection(ann, img, bad_annotations="skip", train=False)) == 3
    with pytest.raises(DataError, match="not found"):
        CocoDetection(tmp_path / "nope.json", img)
    with pytest.raises(DataError, match="image folder"):
        CocoDetection(ann, tmp_path / "nope")


def test_undecodable_training_image_is_replaced_by_the_next(tmp_path, caplog):
    ann, img = write_coco(tmp_path, IMAGES, ANNS)
    (img / "1.png").write_bytes(b"not a png")
    ds = CocoDetection(ann, img)
    with caplog.at_level(logging.WARNING):
        _, t = ds[0]
    assert t["image_id"] == 2 and "1.png" in caplog.text
    with pytest.raises(DataError, match="1.png"):
        CocoDetection(ann, img, train=False)[0]


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path):
    ann, img = write_coco(tmp_path, IMAGES, ANNS)
    t = build_train_transform(pipeline="multiscale")
    a, b = CocoDetection(ann, img, transform=t, seed=3), CocoDetection(ann, img, transform=t, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    for i in range(len(a)):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert (
            torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"]) and ta["scale_factor"] == tb["scale_factor"]
        )
    shapes = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        image, target = a[0]
        shapes.add(tuple(image.shape))
        sx, sy = target["scale_factor"]
        assert abs(image.shape[2] / 48 - sx) < 1e-9 and abs(image.shape[1] / 40 - sy) < 1e-9
    assert len(shapes) > 1
    images, targets = collate([a[0], a[1]])
    assert len(images) == 2 and [t["image_id"] for t in targets] == [1, 2]


def test_filtering_and_targets_match_mmdetection(tmp_path):
    """Expected values recorded from MMDetection 3.3's CocoDataset(filter_cfg=dict(filter_empty_gt=True,
    min_size=32)) on this file: crowd-only (3) and degenerate-only (6) images stay, with no targets."""
    images = [(1, 48, 40), (2, 40, 48), (3, 48, 40), (4, 31, 60), (5, 100, 90), (6, 64, 64)]
    anns = [
        (10, 1, 2, [4.5, 5.0, 20.0, 10.25], {}),
        (11, 1, 1, [30.0, 2.0, 10.0, 30.0], {}),
        (12, 1, 1, [1.0, 1.0, 30.0, 30.0], {"iscrowd": 1}),
        (13, 2, 2, [0.0, 0.0, 40.0, 48.0], {}),
        (14, 2, 1, [1.0, 1.0, 0.5, 9.0], {}),
        (15, 2, 1, [1.0, 1.0, 9.0, 9.0], {"area": 0}),
        (16, 3, 1, [1.0, 1.0, 9.0, 9.0], {"iscrowd": 1}),
        (17, 4, 1, [1.0, 1.0, 9.0, 9.0], {}),
        (18, 5, 1, [90.0, 80.0, 11.5, 11.0], {}),
        (19, 6, 2, [3.0, 3.0, 0.9, 0.9], {}),
    ]
    ds = CocoDetection(*write_coco(tmp_path, images, anns))
    assert ds.image_ids == [1, 2, 3, 5, 6]
    assert [b.tolist() for b in ds._boxes] == [
        [[4.5, 5.0, 24.5, 15.25], [30.0, 2.0, 40.0, 32.0]],
        [[0.0, 0.0, 40.0, 48.0]],
        [],
        [[90.0, 80.0, 101.5, 91.0]],
        [],
    ]
    assert [lab.tolist() for lab in ds._labels] == [[1, 0], [1], [], [0], []]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_annotations_through_eval_and_train(tmp_path, tiny_weights, run_cli, case):
    """Every annotation problem the loader detects reaches the user as one line with the way out."""
    extra_images, extra_anns, text = BAD[case]
    ann, img = write_coco(tmp_path, IMAGES + extra_images, ANNS + extra_anns)
    if case == "missing file":
        (img / "9.png").unlink()
    rc, errors = run_cli(["eval", "--weights", tiny_weights, "--ann", str(ann), "--images", str(img)])
    assert rc == 2 and len(errors) == 1 and text in errors[0] and "data.bad_annotations=skip" in errors[0], errors
    out = tmp_path / "out"
    rc, errors = run_cli(
        [
            "train",
            "--config",
            "sparse_rcnn_r18_demo_shapes",
            "--output-dir",
            str(out),
            "--set",
            f"data.train_ann={ann}",
            "--set",
            f"data.train_images={img}",
            "--set",
            f"data.val_ann={ann}",
            "--set",
            f"data.val_images={img}",
        ]
    )
    assert rc == 2 and len(errors) == 1 and text in errors[0], errors
