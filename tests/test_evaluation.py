"""COCO evaluation: agreement with an independent COCOeval run, perfect predictions, the eval command."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from sparse_rcnn.cli import main
from sparse_rcnn.data import CocoDetection
from sparse_rcnn.evaluation import METRICS, coco_evaluate, detections_to_coco, evaluate
from test_data import write_coco
from tiny import save_tiny_checkpoint

SIX = ["bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l"]


def make_set(tmp_path, n=4, seed=0):
    """n images of 64x48 / 48x64 with 1-3 boxes each over three categories (ids 5, 9, 11)."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, n + 1):
        w, h = (64, 48) if i % 2 else (48, 64)
        images.append((i, w, h))
        for _ in range(int(rng.integers(1, 4))):
            bw, bh = float(rng.uniform(8, w / 2)), float(rng.uniform(8, h / 2))
            box = [float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh)), bw, bh]
            anns.append((len(anns) + 1, i, int(rng.choice([5, 9, 11])), box, {}))
    cats = [{"id": 5, "name": "x"}, {"id": 9, "name": "y"}, {"id": 11, "name": "z"}]
    return write_coco(tmp_path, images, anns, cats)


def independent_stats(coco_gt, results):
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        e = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        e.params.maxDets = [100, 300, 1000]  # MMDetection's CocoMetric
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats


def test_ground_truth_as_detections_scores_one(tmp_path):
    ds = CocoDetection(*make_set(tmp_path), train=False)
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in ds.coco.dataset["annotations"]
    ]
    m = coco_evaluate(ds.coco, results)
    assert m["bbox_mAP"] == 1.0 and m["bbox_mAP_50"] == 1.0 and m["bbox_mAP_75"] == 1.0 and m["bbox_AR_1000"] == 1.0
    assert set(SIX) <= set(m) and m["bbox_mAP_l"] == -1.0  # no large objects in 64 px images


def test_metrics_equal_cocoeval_on_noisy_detections(tmp_path):
    ds = CocoDetection(*make_set(tmp_path, n=6), train=False)
    rng = np.random.default_rng(1)
    results = []
    for a in ds.coco.dataset["annotations"]:
        for _ in range(3):
            x, y, w, h = (np.array(a["bbox"]) + rng.normal(0, 3, 4)).tolist()
            results.append(
                {
                    "image_id": a["image_id"],
                    "category_id": int(rng.choice(ds.cat_ids)),
                    "bbox": [x, y, abs(w), abs(h)],
                    "score": float(rng.uniform()),
                }
            )
    m = coco_evaluate(ds.coco, results, classwise=True)
    stats = independent_stats(ds.coco, results)
    assert [m[k] for k in METRICS] == [float(s) for s in stats]
    assert 0 < m["bbox_mAP"] < 1 and {"bbox_AP_x", "bbox_AP_y", "bbox_AP_z"} <= set(m)


def test_detections_beyond_the_100th_count_as_in_mmdetection(tmp_path):
    ds = CocoDetection(*make_set(tmp_path, n=1), train=False)
    gt = ds.coco.dataset["annotations"]
    junk = [
        {"image_id": 1, "category_id": c, "bbox": [0.0, 0.0, 1.0, 1.0], "score": 0.9}
        for c in ds.cat_ids
        for _ in range(120)
    ]
    right = [{"image_id": 1, "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.5} for a in gt]
    m = coco_evaluate(ds.coco, junk + right)  # the correct boxes rank 121+ in their category
    assert m["bbox_AR_1000"] == 1.0 and m["bbox_AR_100"] == 0.0 and m["bbox_mAP_50"] > 0
    assert m["bbox_mAP"] == 0.0  # pycocotools' summarize takes AP@[.5:.95] at 100 detections, as in MMDetection


def test_detections_to_coco_and_empty_results(tmp_path):
    det = {"boxes": torch.tensor([[1.0, 2.0, 11.0, 22.5]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([2])}
    assert detections_to_coco(7, det, [5, 9, 11]) == [
        {"image_id": 7, "category_id": 11, "bbox": [1.0, 2.0, 10.0, 20.5], "score": 0.5}
    ]
    ds = CocoDetection(*make_set(tmp_path), train=False)
    assert coco_evaluate(ds.coco, []) == {k: 0.0 for k in METRICS}


class GroundTruthModel(nn.Module):
    """Answers each image (recognised by its original size) with its ground truth."""

    def __init__(self, dataset):
        super().__init__()
        self.test_scale = (160, 128)
        self.size_divisor = 32
        self.class_names = list(dataset.class_names)
        self.dataset = dataset
        self.index = {(img["height"], img["width"]): i for i, img in enumerate(dataset._images)}
        self.calls = []

    def detect_resized(self, images, factors, *, independent=False):
        out = []
        for img, (sx, sy) in zip(images, factors):
            self.calls.append(self.training)
            _, t = self.dataset[self.index[round(img.shape[1] / sy), round(img.shape[2] / sx)]]
            out.append({"boxes": t["boxes"], "scores": torch.ones(len(t["boxes"])), "labels": t["labels"]})
        return out


def test_evaluate_perfect_model_under_distributed(tmp_path):
    ann, img = make_set(tmp_path, n=2)
    ds = CocoDetection(ann, img, train=False)
    model = GroundTruthModel(ds).train()
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        metrics, results = evaluate(model, ds, batch_size=2, progress=False)
    finally:
        torch.distributed.destroy_process_group()
    assert metrics["bbox_mAP"] == 1.0 and len(results) == len(ds.coco.dataset["annotations"])
    assert model.calls == [False, False] and model.training  # eval mode inside, restored after


@pytest.fixture
def tiny_checkpoint(tmp_path):
    return save_tiny_checkpoint(tmp_path / "tiny.pth", ["x", "y", "z"])


def test_eval_command_agrees_with_cocoeval(tmp_path, tiny_checkpoint, capsys):
    ann, img = make_set(tmp_path, n=3)
    out, res = tmp_path / "metrics.json", tmp_path / "results.json"
    code = main(
        [
            "eval",
            "--weights",
            str(tiny_checkpoint),
            "--ann",
            str(ann),
            "--images",
            str(img),
            "--output",
            str(out),
            "--results",
            str(res),
            "--batch-size",
            "2",
        ]
    )
    assert code == 0 and "bbox_mAP" in capsys.readouterr().out
    metrics, results = json.loads(out.read_text()), json.loads(res.read_text())
    assert len(results) == 3 * 8 and metrics["num_images"] == 3  # tiny model: 8 detections per image
    ds = CocoDetection(ann, img, train=False)
    stats = independent_stats(ds.coco, results)
    assert [metrics[k] for k in METRICS] == [float(s) for s in stats]


def test_eval_command_in_the_winograd_mode_scores_the_same_boxes(tmp_path, tiny_checkpoint):
    ann, img = make_set(tmp_path, n=2)
    reports = []
    for extra in ([], ["--winograd"]):
        out, res = tmp_path / "metrics.json", tmp_path / "results.json"
        assert (
            main(
                [
                    "eval",
                    "--weights",
                    str(tiny_checkpoint),
                    "--ann",
                    str(ann),
                    "--images",
                    str(img),
                    "--output",
                    str(out),
                    "--results",
                    str(res),
                    *extra,
                ]
            )
            == 0
        )
        reports.append((json.loads(out.read_text()), json.loads(res.read_text())))
    (plain, plain_res), (fast, fast_res) = reports
    assert fast["winograd"] and not plain["winograd"]
    assert len(fast_res) == len(plain_res)
    for a, b in zip(plain_res, fast_res):
        assert a["image_id"] == b["image_id"] and abs(a["score"] - b["score"]) < 1e-4


def test_eval_command_user_errors(tmp_path, tiny_checkpoint, caplog):
    ann, img = write_coco(
        tmp_path,
        [(1, 40, 40)],
        [(1, 1, 1, [1.0, 1.0, 0.0, 5.0], {}), (2, 1, 1, [1, 1, 9, 9], {})],
        [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}, {"id": 3, "name": "z"}],
    )
    args = ["eval", "--weights", str(tiny_checkpoint), "--ann", str(ann), "--images", str(img)]
    assert main(args) == 2 and "data.bad_annotations=skip" in caplog.text
    assert main(args + ["--set", "data.bad_annotations=skip"]) == 0
    assert main(args + ["--set", "data.bad_annotations=maybe"]) == 2
    ann2, _ = write_coco(tmp_path / "two", [(1, 40, 40)], [(1, 1, 1, [1, 1, 9, 9], {})])
    assert main(["eval", "--weights", str(tiny_checkpoint), "--ann", str(ann2), "--images", str(img)]) == 2
    assert "2 categories but the model predicts 3" in caplog.text


def test_eval_command_maps_categories_by_name(tmp_path, tiny_checkpoint):
    cats = [{"id": 3, "name": "z"}, {"id": 7, "name": "x"}, {"id": 9, "name": "y"}, {"id": 12, "name": "w"}]
    ann, img = write_coco(
        tmp_path,
        [(1, 64, 48), (2, 48, 64)],
        [(1, 1, 7, [4, 4, 20, 20], {}), (2, 2, 3, [8, 8, 30, 30], {}), (3, 2, 12, [1, 1, 9, 9], {})],
        cats,
    )
    out, res = tmp_path / "metrics.json", tmp_path / "results.json"
    assert (
        main(
            [
                "eval",
                "--weights",
                str(tiny_checkpoint),
                "--ann",
                str(ann),
                "--images",
                str(img),
                "--output",
                str(out),
                "--results",
                str(res),
            ]
        )
        == 0
    )
    metrics, results = json.loads(out.read_text()), json.loads(res.read_text())
    assert {r["category_id"] for r in results} <= {7, 9, 3}  # model classes x, y, z; "w" is not scored
    ds = CocoDetection(ann, img, train=False)
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        e = COCOeval(ds.coco, ds.coco.loadRes(results), "bbox")
        e.params.maxDets, e.params.catIds = [100, 300, 1000], [7, 9, 3]
        e.evaluate()
        e.accumulate()
        e.summarize()
    assert [metrics[k] for k in METRICS] == [float(s) for s in e.stats]
    assert "bbox_AP_w" not in metrics and "bbox_AP_x" in metrics


def test_eval_command_refuses_an_unwritable_output_before_evaluating(tmp_path, tiny_checkpoint, caplog):
    ann, img = make_set(tmp_path, n=1)
    (tmp_path / "taken").mkdir()
    args = ["eval", "--weights", str(tiny_checkpoint), "--ann", str(ann), "--images", str(img)]
    assert main(args + ["--output", str(tmp_path / "taken")]) == 2 and "is a folder" in caplog.text
    (tmp_path / "file").write_text("")
    assert main(args + ["--results", str(tmp_path / "file" / "r.json")]) == 2
