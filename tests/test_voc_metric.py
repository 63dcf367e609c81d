"""VOC AP50 (11-point and area) on hand-computed cases, as MMDetection's VOCMetric defines it."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO

from sparse_rcnn.evaluation.voc import average_precision, match_image, voc_evaluate


def _coco(anns, num_images=2, names=("a", "b", "c")):
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i + 1, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in range(num_images)],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)],
        "annotations": [
            {
                "id": k + 1,
                "image_id": img,
                "category_id": cat,
                "bbox": bbox,
                "iscrowd": crowd,
                "area": bbox[2] * bbox[3],
            }
            for k, (img, cat, bbox, crowd) in enumerate(anns)
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _det(img, cat, x1, y1, x2, y2, score):
    return {"image_id": img, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}


def test_hand_computed_case():
    """Class a: two boxes in image 1, a difficult one in image 2. Detections by score: 0.9 hits box 1
    (TP), 0.8 hits it again (FP), 0.7 hits the difficult box (ignored), 0.6 hits nothing (FP), 0.5
    hits box 2 with IoU 100/110 (TP). Recall .5 .5 .5 .5 1, precision 1 .5 .5 1/3 .5:
    area = .5 x 1 + .5 x .5 = .75; 11-point = (6 x 1 + 5 x .5) / 11. Class b: one box, no detection
    (0). Class c: no box (-1, not in the mean)."""
    coco = _coco(
        [(1, 1, [0, 0, 10, 10], 0), (1, 1, [20, 20, 10, 10], 0), (2, 1, [0, 0, 10, 10], 1), (2, 2, [30, 30, 10, 10], 0)]
    )
    dets = [
        _det(1, 1, 0, 0, 10, 10, 0.9),
        _det(1, 1, 0, 0, 10, 10, 0.8),
        _det(2, 1, 0, 0, 10, 10, 0.7),
        _det(2, 1, 50, 50, 60, 60, 0.6),
        _det(1, 1, 20, 20, 30, 31, 0.5),
        _det(1, 3, 0, 0, 5, 5, 0.4),
    ]
    m = voc_evaluate(coco, dets)
    assert m["voc_AP50_a"] == pytest.approx(0.75) and m["voc_AP50_11pt_a"] == pytest.approx(8.5 / 11)
    assert m["voc_AP50_b"] == 0 and m["voc_AP50_11pt_b"] == 0
    assert m["voc_AP50_c"] == -1 and m["voc_AP50_11pt_c"] == -1
    assert m["voc_AP50"] == pytest.approx(0.375) and m["voc_AP50_11pt"] == pytest.approx(8.5 / 22)


def test_iou_threshold_is_inclusive_and_in_continuous_pixels():
    """[0, 0, 10, 10] against [0, 0, 10, 20]: IoU exactly 100 / 200 (no +1 pixel), which counts."""
    tp, fp = match_image(np.array([[0, 0, 10, 20.0]]), np.array([1.0]), np.array([[0, 0, 10, 10.0]]), np.zeros((0, 4)))
    assert tp.tolist() == [1] and fp.tolist() == [0]
    tp, fp = match_image(np.array([[0, 0, 10, 20.5]]), np.array([1.0]), np.array([[0, 0, 10, 10.0]]), np.zeros((0, 4)))
    assert tp.tolist() == [0] and fp.tolist() == [1]


def test_average_precision_modes():
    recall, precision = np.array([0.25, 0.5, 0.5, 1.0]), np.array([1.0, 1.0, 2 / 3, 0.5])
    assert average_precision(recall, precision, "area") == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    assert average_precision(recall, precision, "11pt") == pytest.approx((6 * 1 + 5 * 0.5) / 11)
    assert average_precision(np.array([1.0]), np.array([1.0]), "area") == 1.0
    with pytest.raises(ValueError):
        average_precision(recall, precision, "101pt")
