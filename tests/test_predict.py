"""Batch prediction: folders and list files, worker processes, COCO results output."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.checkpoints import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
from sparse_rcnn.data import expand_image_paths
from sparse_rcnn.engine import PredictionSummary, predict_files
from sparse_rcnn.evaluation import coco_category_ids
from sparse_rcnn.models import load_model
from test_images import make_bad_files, save_with_orientation, scene
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


def test_the_library_call_writes_what_the_command_writes(setup, tmp_path):
    root, folder = setup
    _, from_cli = _predict(root, str(folder), "--save-vis", str(tmp_path / "cli_vis"))
    model = load_model(weights=str(root / "tiny.pth"))
    paths = expand_image_paths([str(folder)])
    summary = predict_files(model, paths, tmp_path / "lib.json", vis_dir=tmp_path / "lib_vis")
    assert summary == PredictionSummary(images=5, failed=0)
    assert json.loads((tmp_path / "lib.json").read_text()) == from_cli
    drawn = sorted(p.name for p in (tmp_path / "lib_vis").iterdir())
    assert drawn == sorted(p.name for p in (tmp_path / "cli_vis").iterdir()) == [f"img{i}.png" for i in range(5)]


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
    ann.write_text(
        json.dumps(
            {
                "images": [{"id": 42, "file_name": "img0.png"}, {"id": 7, "file_name": "sub/img3.png"}],
                "categories": [{"id": 30, "name": "star"}, {"id": 10, "name": "circle"}, {"id": 20, "name": "square"}],
                "annotations": [],
            }
        )
    )
    status, results = _predict(
        root, str(folder / "img0.png"), str(folder / "img3.png"), "--format", "coco", "--ann", str(ann)
    )
    assert status == 0
    assert {r["image_id"] for r in results} == {42, 7}
    assert {r["category_id"] for r in results} <= {10, 20, 30}
    status, _ = _predict(root, str(folder / "img1.png"), "--format", "coco", "--ann", str(ann))
    assert status == 1  # not in the annotation file: reported, not guessed


def test_zoo_classes_get_the_coco_category_ids():
    assert coco_category_ids(list(COCO_CLASS_NAMES)) == (list(COCO_CATEGORY_IDS), None)
    assert coco_category_ids(CLASSES) == ([1, 2, 3], None)
    assert COCO_CATEGORY_IDS[-1] == 90 and 12 not in COCO_CATEGORY_IDS and len(set(COCO_CATEGORY_IDS)) == 80


# Bad images and arguments: predict carries on past a bad image and exits 1 listing the failures;
# unusable arguments stop it with status 2 and one line.


def test_predict_carries_on_past_bad_images_and_lists_them(tmp_path, tiny_weights, run_cli):
    folder = tmp_path / "imgs"
    bad = make_bad_files(folder)
    Image.fromarray(scene()).save(folder / "good.png")
    save_with_orientation(folder / "rotated.jpg", scene(), 6)
    Image.fromarray(scene()).convert("L").save(folder / "grey.png")
    out = tmp_path / "out.json"
    rc, errors = run_cli(
        [
            "predict",
            str(folder),
            str(tmp_path / "missing.png"),
            "--weights",
            tiny_weights,
            "--output",
            str(out),
            "--batch-size",
            "2",
        ]
    )
    assert rc == 1
    records = {Path(r["image"]).name: r for r in json.loads(out.read_text())}
    assert set(records) == {"good.png", "rotated.jpg", "grey.png"}
    assert (records["rotated.jpg"]["width"], records["rotated.jpg"]["height"]) == (24, 40)  # displayed frame
    assert (records["good.png"]["width"], records["good.png"]["height"]) == (40, 24)
    assert all(len(r["detections"]) == 8 for r in records.values())
    for name, cause in {**bad, "missing.png": "no such file"}.items():
        assert any(name in e and cause in e for e in errors), (name, errors)
    assert errors[-1] == f"{len(bad) + 1} of {len(bad) + 4} images failed"


def test_predict_with_worker_processes_reports_failures_too(tmp_path, tiny_weights, run_cli):
    Image.fromarray(scene()).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    rc, errors = run_cli(
        ["predict", str(tmp_path), "--weights", tiny_weights, "--workers", "1", "--output", str(tmp_path / "o.json")]
    )
    assert rc == 1 and any("bad.png" in e for e in errors)
    assert [Path(r["image"]).name for r in json.loads((tmp_path / "o.json").read_text())] == ["good.png"]


def test_predict_on_extreme_sizes(tmp_path, tiny_weights, run_cli):
    """A 3000x1 strip resized to fit 64x48 would round to height 0 without the 1-pixel floor."""
    Image.fromarray(np.zeros((1, 3000, 3), np.uint8)).save(tmp_path / "strip.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    rc, _ = run_cli(["predict", str(tmp_path), "--weights", tiny_weights, "--output", str(tmp_path / "o.json")])
    sizes = [(r["width"], r["height"]) for r in json.loads((tmp_path / "o.json").read_text())]
    assert rc == 0 and sizes == [(1, 1), (3000, 1)]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--output", "{tmp}/no/such/dir/out.json"], "cannot write --output"),
        (["--save-vis", "{tmp}/file.txt"], "exists and is not a folder"),
        (["{tmp}/empty_dir"], "empty_dir: folder holds no images"),
        (["--winograd", "--dtype", "bf16"], "--winograd goes with --dtype fp32"),
    ],
)
def test_predict_unusable_arguments(tmp_path, tiny_weights, run_cli, extra, message):
    Image.fromarray(scene()).save(tmp_path / "good.png")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    rc, errors = run_cli(
        ["predict", str(tmp_path / "good.png"), *[a.format(tmp=tmp_path) for a in extra], "--weights", tiny_weights]
    )
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors


@pytest.mark.parametrize(
    "option, message",
    [
        (["--batch-size", "0"], "must be at least 1"),
        (["--workers", "-1"], "must be 0 or more"),
        (["--device", "gpu"], "unknown device 'gpu'"),
        (["--device", "cuda:99"], "cuda:99"),
    ],
)
def test_predict_bad_options_are_usage_errors(tmp_path, tiny_weights, capsys, option, message):
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", str(tmp_path), "--weights", tiny_weights, *option])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Config and tiny_weights


@pytest.mark.slow
def test_real_process_prints_one_line_and_no_traceback(tmp_path, tiny_weights):
    """The same through a real process: what a user sees on stderr."""
    Image.fromarray(scene()).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_text("not an image")
    cmd = [sys.executable, "-m", "sparse_rcnn.cli", "predict", str(tmp_path), "--weights", tiny_weights]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"ERROR skipped {tmp_path / 'bad.jpg'}: not an image" in proc.stderr
    assert [Path(r["image"]).name for r in json.loads(proc.stdout)] == ["good.png"]
