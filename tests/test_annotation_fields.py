"""Every annotation field COCO evaluation reads is validated up front, not after the inference."""

import json

import pytest

from sparse_rcnn.data import CocoDetection, DataError
from train_fixtures import LANDSCAPE, make_coco


@pytest.mark.parametrize(
    "field, value",
    [
        ("area", None),
        ("area", "12"),
        ("area", True),
        ("iscrowd", None),
        ("iscrowd", "0"),
        ("iscrowd", 2),
        ("ignore", None),
        ("ignore", [1]),
    ],
)
def test_bad_evaluation_fields_are_refused_up_front(tmp_path, field, value):
    ann, images = make_coco(tmp_path, [LANDSCAPE] * 2, boxes_per_image=2)
    raw = json.loads(ann.read_text())
    raw["annotations"][1][field] = value
    ann.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=f"annotation 2: {field} must be"):
        CocoDetection(ann, images, train=False)
    kept = CocoDetection(ann, images, train=False, bad_annotations="skip")
    assert len(kept.coco.anns) == 3  # the bad one dropped, evaluation works on the rest


def test_valid_flags_and_missing_fields_pass(tmp_path):
    ann, images = make_coco(tmp_path, [LANDSCAPE] * 2, boxes_per_image=2)
    raw = json.loads(ann.read_text())
    raw["annotations"][0]["iscrowd"] = True
    raw["annotations"][1]["ignore"] = 1
    del raw["annotations"][2]["area"], raw["annotations"][2]["iscrowd"]
    ann.write_text(json.dumps(raw))
    assert len(CocoDetection(ann, images, train=False).coco.anns) == 4


def test_huge_boxes_are_refused_without_numpy_warnings(tmp_path, recwarn):
    ann, images = make_coco(tmp_path, [LANDSCAPE] * 2, boxes_per_image=1)
    raw = json.loads(ann.read_text())
    raw["annotations"][0]["bbox"] = [1e308] * 4
    ann.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="outside"):
        CocoDetection(ann, images, train=False)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
