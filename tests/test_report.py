"""The evaluation report, stored score thresholds (`--score-thr auto`, checkpoints, ONNX metadata) and show-data."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import sparse_rcnn
from sparse_rcnn.checkpoints import read_checkpoint, store_score_thresholds
from sparse_rcnn.cli import main
from sparse_rcnn.data import CocoDetection
from sparse_rcnn.engine import evaluate_report as eval_run
from sparse_rcnn.visualize.report import FILES
from test_data import write_coco
from test_evaluation import make_set
from tiny import save_tiny_checkpoint

CLASSES = ["x", "y", "z"]


def noisy_results(dataset, seed=0):
    """Detections near the ground truth (some with the wrong class) plus random false alarms."""
    rng = np.random.default_rng(seed)
    out = []
    for a in dataset.coco.dataset["annotations"]:
        x, y, w, h = a["bbox"]
        cat = a["category_id"] if rng.random() < 0.8 else int(rng.choice(dataset.cat_ids))
        j = rng.normal(0, 0.1, 4)
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": cat,
                "bbox": [x + j[0] * w, y + j[1] * h, w * (1 + j[2]), h],
                "score": float(rng.uniform(0.3, 0.95)),
            }
        )
    for image_id in dataset.image_ids:
        out.append(
            {
                "image_id": image_id,
                "category_id": int(rng.choice(dataset.cat_ids)),
                "bbox": [1.0, 1.0, 9.0, 7.0],
                "score": float(rng.uniform(0.05, 0.6)),
            }
        )
    return out


@pytest.fixture
def fake_detector(monkeypatch):
    """eval's detection pass replaced by ``noisy_results``: the report is about the scoring, not the model."""
    monkeypatch.setattr(eval_run, "detect_dataset", lambda model, dataset, **kw: noisy_results(dataset))


def test_eval_report_writes_every_file_and_stores_thresholds(tmp_path, fake_detector, capsys):
    ann, images = make_set(tmp_path, n=8)
    ckpt = save_tiny_checkpoint(tmp_path / "model.pth", CLASSES)
    before = read_checkpoint(ckpt)
    argv = [
        "eval",
        "--weights",
        str(ckpt),
        "--ann",
        str(ann),
        "--images",
        str(images),
        "--report",
        str(tmp_path / "rep"),
        "--save-thresholds",
        "--output",
        str(tmp_path / "m.json"),
    ]
    assert main(argv) == 0
    for name in FILES:
        assert (tmp_path / "rep" / name).stat().st_size > 0, name
    for name in FILES:
        if name.endswith(".png"):
            assert min(Image.open(tmp_path / "rep" / name).size) > 100
    html = (tmp_path / "rep" / "index.html").read_text()
    for name in FILES:
        if name.endswith(".png"):
            assert f'src="{name}"' in html  # relative links to files that exist
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    thr = metrics["score_thresholds"]
    assert thr["class_names"] == CLASSES and len(thr["per_class"]) == 3 and 0 < thr["f1"] <= 1
    assert [row["class"] for row in metrics["per_class"]] == CLASSES
    confusion = json.loads((tmp_path / "rep" / "confusion_matrix.json").read_text())
    assert np.asarray(confusion["counts"]).shape == (4, 4)
    assert json.loads((tmp_path / "m.json").read_text())["score_thresholds"] == thr
    after = read_checkpoint(ckpt)  # stored, and nothing else changed
    assert after["score_thresholds"] == thr
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())
    assert "F1-optimal score threshold" in capsys.readouterr().out


def _error_lines(caplog):
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    caplog.clear()
    return lines


def test_save_thresholds_refuses_mmdetection_and_missing_weights(tmp_path, caplog):
    ann, images = make_set(tmp_path)
    mmdet = tmp_path / "mmdet.pth"
    torch.save({"meta": {}, "state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, mmdet)
    base = ["eval", "--ann", str(ann), "--images", str(images), "--save-thresholds"]
    assert main(base + ["--weights", str(mmdet)]) == 2
    (err,) = _error_lines(caplog)
    assert "MMDetection" in err and "convert" in err and "\n" not in err
    assert main(base + ["--model", "sparse_rcnn_r50_fpn_1x_coco"]) == 2
    (err,) = _error_lines(caplog)
    assert "--weights" in err


def _stored(tmp_path, per_class):
    ckpt = tmp_path / "model.pth"
    if not ckpt.exists():
        save_tiny_checkpoint(ckpt, CLASSES)
    store_score_thresholds(ckpt, {"global": 0.5, "per_class": per_class, "class_names": CLASSES, "source": "test"})
    return ckpt


def test_predict_auto_uses_the_stored_per_class_thresholds(tmp_path, caplog):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 150, 3), dtype=np.uint8)
    model = sparse_rcnn.load(weights=str(save_tiny_checkpoint(tmp_path / "model.pth", CLASSES)))
    everything = model.predict(image)
    # thresholds that cut each class at a different place in its own scores
    per_class = []
    for k in range(3):
        s = everything["scores"][everything["labels"] == k]
        per_class.append(float(s.median()) if len(s) else 0.0)
    model = sparse_rcnn.load(weights=str(_stored(tmp_path, per_class)))
    assert model.score_thresholds["per_class"] == per_class
    with caplog.at_level("INFO"):
        got = model.predict(image, score_thr="auto")
    want = everything["scores"] >= torch.tensor(per_class)[everything["labels"]]
    assert torch.equal(got["scores"], everything["scores"][want]) and torch.equal(
        got["labels"], everything["labels"][want]
    )
    assert len(got["scores"]) < len(everything["scores"])
    assert "x >= " in caplog.text and "(test)" in caplog.text  # says which values were used
    # the command line: the same boxes
    Image.fromarray(image).save(tmp_path / "a.png")
    out = tmp_path / "p.json"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "a.png"),
                "--weights",
                str(tmp_path / "model.pth"),
                "--score-thr",
                "auto",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    dets = json.loads(out.read_text())[0]["detections"]
    assert sorted(d["score"] for d in dets) == pytest.approx(sorted(everything["scores"][want].tolist()))


def test_auto_without_stored_thresholds_is_a_one_line_error(tmp_path, caplog):
    ckpt = save_tiny_checkpoint(tmp_path / "model.pth", CLASSES)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "a.png"), "--weights", str(ckpt), "--score-thr", "auto"]) == 2
    (err,) = _error_lines(caplog)
    assert "eval --save-thresholds" in err and "--score-thr" in err and "\n" not in err
    with pytest.raises(sparse_rcnn.checkpoints.CheckpointError, match="`save_thresholds`"):
        sparse_rcnn.load(weights=str(ckpt)).predict(np.zeros((40, 50, 3), np.uint8), score_thr="auto")


def test_export_metadata_carries_the_thresholds(tmp_path):
    from sparse_rcnn.deploy.export import export_metadata

    model = sparse_rcnn.load(weights=str(_stored(tmp_path, [0.1, 0.2, 0.3])))
    meta = export_metadata(model)
    assert json.loads(meta["score_thresholds"])["per_class"] == [0.1, 0.2, 0.3]
    model.score_thresholds = None
    assert "score_thresholds" not in export_metadata(model)


def test_show_data_lists_problems_and_draws(tmp_path, capsys):
    anns = [
        (1, 1, 1, [2.0, 3.0, 20.0, 15.0], {}),
        (2, 1, 2, [30.0, 5.0, 10.0, 30.0], {}),
        (3, 2, 1, [5.0, 5.0, -4.0, 10.0], {}),
        (4, 2, 2, [1.0, 1.0, 30.0, 20.0], {}),
    ]  # 3: negative width
    ann, images = write_coco(tmp_path, [(1, 48, 40), (2, 40, 48)], anns)
    out = tmp_path / "show"
    assert main(["show-data", "--ann", str(ann), "--images", str(images), "--output", str(out), "--count", "2"]) == 0
    assert "1 annotation problem" in capsys.readouterr().out
    problems = (out / "problems.txt").read_text().splitlines()
    assert len(problems) == 1 and "annotation 3" in problems[0]
    assert "annotation 3" in (out / "index.html").read_text()
    for name in ("samples.png", "classes.png", "box_sizes.png"):
        assert min(Image.open(out / name).size) > 100
    assert len(CocoDetection(ann, images, train=False, bad_annotations="skip")) == 2
