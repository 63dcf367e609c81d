"""The last sharp edges (#30): silently wrong data refused, and one line (no traceback) where a
user's file, path or value is at fault."""

import json

import pytest

from sparse_rcnn.data import CocoDetection, DataError
from test_data import write_coco


def test_two_image_ids_sharing_one_file_name_are_refused_naming_both(tmp_path, run_cli, tiny_weights):
    ann, img = write_coco(
        tmp_path, [(1, 40, 40), (2, 48, 40)], [(1, 1, 1, [1, 1, 9, 9], {}), (2, 2, 1, [5, 5, 9, 9], {})]
    )
    data = json.loads(ann.read_text())
    data["images"][1]["file_name"] = "1.png"  # image 2's boxes would be scored on image 1's pixels
    ann.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"image 2: file_name '1.png' is also image 1's; one file, two images"):
        CocoDetection(ann, img, train=False)
    rc, errors = run_cli(["eval", "--weights", tiny_weights, "--ann", str(ann), "--images", str(img)])
    assert rc == 2 and "file_name '1.png' is also image 1's" in errors[0]
    data["images"][1] = {**data["images"][0], "id": 2}
    ann.write_text(json.dumps(data))
    with pytest.raises(DataError, match="identical but for their id"):
        CocoDetection(ann, img, train=False)
    ds = CocoDetection(ann, img, train=False, bad_annotations="skip")  # the way out drops the second entry
    assert ds.image_ids == [1]
