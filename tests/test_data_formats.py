"""The same dataset as COCO, YOLO and Pascal VOC gives the same training targets and the same
`sparse-rcnn eval` metrics (issue 14, "done when" 1), and VOC's conventions (1-based pixels,
difficult boxes, class order) hold."""

import json
import logging

import numpy as np
import pytest
import torch

from sparse_rcnn import cli
from sparse_rcnn.data import CocoDetection
from sparse_rcnn.data.sources import detect_format, load_split
from three_formats import SIZE, write_three_formats

CLASSES = ["circle", "square", "star"]  # sorted: VOC's class order is the sorted names


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pixels = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
        x, y = rng.integers(0, SIZE - 40, 2)
        pixels[y : y + 40, x : x + 30] = 200
        out.append(pixels)
    return out


def _save_model(path, proposals: torch.Tensor):
    """The tiny model, its proposal boxes set to ``proposals`` (normalised cx, cy, w, h) and its box
    regression zeroed: it detects exactly those boxes, with scores that depend on the image."""
    from sparse_rcnn.checkpoints import model_checkpoint, save_checkpoint
    from sparse_rcnn.models import build_model
    from tiny import tiny_config

    cfg = tiny_config(num_classes=len(CLASSES))
    model = build_model(cfg.model, CLASSES)
    with torch.no_grad():
        model.proposal_boxes.weight.copy_(proposals)
        for name, param in model.named_parameters():
            if "box_deltas" in name:
                param.zero_()
    save_checkpoint(model_checkpoint(model, cfg), path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model that detects 8 fixed boxes; ground truth: three of them (rounded to whole
    pixels, a class each) and one box no detection matches, so that the metrics are far from
    0 and any disagreement between the formats would show."""
    root = tmp_path_factory.mktemp("formats")
    torch.manual_seed(0)
    cxcy, wh = torch.rand(8, 2) * 0.4 + 0.3, torch.rand(8, 2) * 0.3 + 0.2
    weights = _save_model(root / "tiny.pth", torch.cat([cxcy, wh], 1))
    xyxy = (torch.cat([cxcy - wh / 2, cxcy + wh / 2], 1) * SIZE).round().int().tolist()
    objects = [
        [((i + k) % 3, *xyxy[(i + k) % 8]) for k in range(3)] + [(i % 3, 5 + i, 7, 40 + i, 31 + 2 * i)]
        for i in range(4)
    ]
    paths = write_three_formats(root, _images(4), objects, CLASSES)
    return root, weights, paths, objects


def test_format_is_detected(setup):
    _, _, paths, _ = setup
    assert {fmt: detect_format(p) for fmt, p in paths.items()} == {"coco": "coco", "yolo": "yolo", "voc": "voc"}
    assert detect_format(paths["yolo"].parent) == "yolo"  # a folder holding data.yaml


def test_three_formats_give_identical_training_targets(setup):
    _, _, paths, objects = setup
    targets = {}
    for fmt, path in paths.items():
        ds = CocoDetection.from_split(load_split(path, split="val"), train=True)
        assert ds.class_names == CLASSES and ds.format == fmt
        targets[fmt] = [ds[i][1] for i in range(len(ds))]
    for i, objs in enumerate(objects):
        expected = torch.tensor([o[1:5] for o in objs], dtype=torch.float32)
        for fmt in paths:
            t = targets[fmt][i]
            assert torch.allclose(t["boxes"], expected, atol=1e-4, rtol=0), fmt
            assert t["labels"].tolist() == [o[0] for o in objs], fmt
            assert t["orig_size"] == (SIZE, SIZE)


def test_three_formats_give_identical_eval_metrics(setup):
    root, weights, paths, _ = setup
    reports = {}
    for fmt, path in paths.items():
        out = root / f"metrics_{fmt}.json"
        code = cli.main(
            [
                "eval",
                "--weights",
                str(weights),
                "--data",
                str(path),
                "--metric",
                "coco",
                "voc",
                "--output",
                str(out),
                "--results",
                str(root / f"results_{fmt}.json"),
            ]
        )
        assert code == 0
        report = json.loads(out.read_text())
        report["score_thresholds"].pop("source")  # the annotation file they were chosen on
        reports[fmt] = {k: v for k, v in report.items() if k not in ("ann", "format")}
    assert (
        reports["coco"]["bbox_mAP_50"] > 0.3 and reports["coco"]["voc_AP50"] > 0.3
    )  # the rounded detections are found
    assert reports["yolo"] == reports["coco"] and reports["voc"] == reports["coco"]
    results = [json.loads((root / f"results_{fmt}.json").read_text()) for fmt in paths]
    assert results[1] == results[0] and results[2] == results[0]


def test_voc_difficult_boxes_leave_training_and_are_ignored_in_evaluation(tmp_path):
    objects = [[(0, 10, 10, 50, 60), (1, 60, 60, 100, 90, 1)], [(2, 0, 0, 128, 128)]]
    paths = write_three_formats(tmp_path, _images(2), objects, CLASSES)
    train = CocoDetection.from_split(load_split(paths["voc"], split="val"), train=True)
    assert train[0][1]["labels"].tolist() == [0]  # the difficult square is not a target
    val = CocoDetection.from_split(load_split(paths["voc"], split="val"), train=False)
    anns = val.coco.loadAnns(val.coco.getAnnIds(imgIds=[1]))
    assert [(a["category_id"], a["iscrowd"], a["bbox"]) for a in anns] == [
        (1, 0, [10, 10, 40, 50]),
        (2, 1, [60, 60, 40, 30]),
    ]


def test_voc_pixels_are_one_based_and_inclusive(tmp_path):
    """<xmin>1</xmin><xmax>128</xmax> covers the whole 128-pixel row: x1 = 0, x2 = 128 (detectron2's reading)."""
    paths = write_three_formats(tmp_path, _images(1), [[(0, 0, 0, SIZE, SIZE)]], ["thing"])
    xml = (paths["voc"] / "Annotations" / "img0.xml").read_text()
    assert "<xmin>1</xmin><ymin>1</ymin><xmax>128</xmax><ymax>128</ymax>" in xml
    ds = CocoDetection.from_split(load_split(paths["voc"], split="val"), train=True)
    assert ds[0][1]["boxes"].tolist() == [[0.0, 0.0, 128.0, 128.0]]


def test_train_on_a_yolo_dataset_from_the_command_line(setup, tmp_path, caplog):
    """(VOC goes through the same path: ``build_datasets`` -> ``load_split``.)"""
    from train_fixtures import tiny_config_dict, write_yaml

    _, _, paths, _ = setup
    cfg = write_yaml(tmp_path / "tiny.yaml", tiny_config_dict(epochs=1))
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        code = cli.main(
            [
                "train",
                "--config",
                str(cfg),
                "--data",
                str(paths["yolo"]),
                "--output-dir",
                str(out),
                "--max-iters",
                "1",
                "--set",
                "data.train_split=val",
                "--set",
                "data.filter_empty=false",
            ]
        )
    assert code == 0
    assert "YOLO dataset" in caplog.text  # the format detected is logged
    from sparse_rcnn.models import load_model

    assert load_model(None, str(out / "model_final.pth")).class_names == CLASSES
    assert "bbox_mAP" in json.loads((out / "metrics.json").read_text())  # validated on the val split
