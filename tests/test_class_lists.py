"""Evaluation matches the dataset's classes to the model's by name, never by position: a VOC
split that holds some of the model's classes, a YOLO ``names`` list in another order or case, a
class list carried by the dataset (``labelmap.txt``) or given (``data.classes``)."""

import json

import numpy as np
import yaml

from sparse_rcnn.config import config_from_dict
from sparse_rcnn.data import build_datasets, load_split
from three_formats import write_three_formats
from tiny import save_whole_image_checkpoint

MODEL = ["cross", "ellipse", "rectangle", "triangle"]


def _images(n=3):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(n)]


def _dataset(tmp_path, class_names=MODEL):
    """The three formats of 3 images whose objects are rectangles and triangles only (the VOC XMLs
    name 2 of the model's 4 classes), and an untrained model whose boxes are its proposals (the
    whole image: box deltas zeroed), so that AP > 0."""
    save_whole_image_checkpoint(tmp_path / "m.pth", MODEL, test_scale=(64, 48))
    objects = [[(3, 0, 0, 128, 128)], [(2, 0, 0, 128, 128)], [(2, 0, 0, 128, 128), (3, 10, 10, 100, 100)]]
    return write_three_formats(tmp_path / "d", _images(), objects, class_names), tmp_path / "m.pth"


def _eval(run_cli, weights, data, tmp_path, tag, *extra, classes=None):
    """(metrics, [(image id, class name, score)] of the detections of the split's classes)."""
    out, res = tmp_path / f"{tag}.json", tmp_path / f"{tag}-results.json"
    rc, errors = run_cli(
        ["eval", "--weights", str(weights), "--data", str(data), "--output", str(out), "--results", str(res)]
        + list(extra)
    )
    assert rc == 0, errors
    metrics = json.loads(out.read_text())
    names = {c["id"]: c["name"] for c in _categories(data, classes)}
    named = sorted(
        (r["image_id"], names[r["category_id"]].lower(), round(r["score"], 6))
        for r in json.loads(res.read_text())
        if r["category_id"] in names and names[r["category_id"]].lower() in ("rectangle", "triangle")
    )
    keep = {k: v for k, v in metrics.items() if k.startswith(("bbox_", "voc_"))}
    return keep, named


def _categories(data, classes=None):
    split = load_split(data, split="val", classes=classes)
    return split.dataset["categories"]


def test_voc_split_with_some_of_the_model_classes_scores_as_coco_with_all(run_cli, tmp_path):
    paths, weights = _dataset(tmp_path)
    coco = _eval(run_cli, weights, paths["coco"], tmp_path, "coco", "--metric", "coco", "voc")
    assert [c["name"] for c in _categories(paths["voc"])] == ["rectangle", "triangle"]
    voc = _eval(run_cli, weights, paths["voc"], tmp_path, "voc", "--metric", "coco", "voc")
    assert voc == coco and coco[0]["bbox_AP_cross"] == -1 and coco[0]["voc_AP50"] > 0


def test_labelmap_txt_gives_the_voc_class_list_and_its_order(run_cli, tmp_path):
    paths, weights = _dataset(tmp_path)
    (paths["voc"] / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ntriangle:1,2,3::\ncross:4,5,6::\n"
        "rectangle:7,8,9::\nellipse:1,1,1::\n"
    )
    assert [c["name"] for c in _categories(paths["voc"])] == ["triangle", "cross", "rectangle", "ellipse"]
    assert _eval(run_cli, weights, paths["voc"], tmp_path, "voc") == _eval(
        run_cli, weights, paths["coco"], tmp_path, "coco"
    )
    (paths["voc"] / "labelmap.txt").write_text("triangle\ncross\n")  # rectangle objects: not in the list
    rc, errors = run_cli(["eval", "--weights", str(weights), "--data", str(paths["voc"])])
    assert rc == 2 and "class 'rectangle' is not in labelmap.txt (triangle, cross)" in errors[0]


def test_data_classes_list_or_names_file_gives_the_voc_class_list(run_cli, tmp_path):
    paths, weights = _dataset(tmp_path)
    voc = load_split(paths["voc"], split="val", classes=["triangle", "ellipse", "cross"])
    assert [c["name"] for c in voc.dataset["categories"]] == ["triangle", "ellipse", "cross"]
    names = tmp_path / "names.txt"
    names.write_text("rectangle\ntriangle\nellipse\ncross\n")
    expected = _eval(run_cli, weights, paths["coco"], tmp_path, "coco")
    assert (
        _eval(
            run_cli,
            weights,
            paths["voc"],
            tmp_path,
            "a",
            "--set",
            f"data.classes={names}",
            classes=names.read_text().split(),
        )
        == expected
    )
    assert (
        _eval(
            run_cli,
            weights,
            paths["voc"],
            tmp_path,
            "b",
            "--set",
            "data.classes=[triangle, rectangle]",
            classes=["triangle", "rectangle"],
        )
        == expected
    )


def test_yolo_names_in_another_order_and_case_are_matched_by_name(run_cli, tmp_path):
    paths, weights = _dataset(tmp_path)
    expected = _eval(run_cli, weights, paths["coco"], tmp_path, "coco")
    # the same boxes under names in reverse order and capitalised: labels rewritten to match
    order = ["Triangle", "Rectangle", "Ellipse", "Cross"]
    for label_file in (paths["yolo"].parent / "labels" / "val").glob("*.txt"):
        lines = [line.split(" ", 1) for line in label_file.read_text().splitlines()]
        label_file.write_text("".join(f"{3 - int(k)} {rest}\n" for k, rest in lines))
    paths["yolo"].write_text(yaml.safe_dump({"val": "images/val", "names": order}))
    metrics, named = _eval(run_cli, weights, paths["yolo"], tmp_path, "yolo")
    assert named == expected[1] and expected[0]["bbox_AP_triangle"] > 0
    assert {k.lower(): v for k, v in metrics.items()} == {k.lower(): v for k, v in expected[0].items()}


def test_dataset_classes_the_model_lacks_are_refused_by_name(run_cli, tmp_path):
    paths, weights = _dataset(tmp_path, ["cross", "ellipse", "hexagon", "triangle"])
    for fmt in ("coco", "yolo", "voc"):
        rc, errors = run_cli(["eval", "--weights", str(weights), "--data", str(paths[fmt])])
        assert rc == 2 and "class 'hexagon' is not among them (cross, ellipse, rectangle, triangle)" in errors[0], (
            errors
        )


def test_training_takes_the_voc_class_list_from_labelmap_or_data_classes(tmp_path):
    paths, _ = _dataset(tmp_path)
    (paths["voc"] / "labelmap.txt").write_text(
        "background:0,0,0::\ntriangle:1,2,3::\nrectangle:4,5,6::\ncross:7,8,9::\n"
    )
    raw = {"data": {"root": str(paths["voc"]), "train_split": "val", "val_split": None}}
    assert build_datasets(config_from_dict(raw))[0].class_names == ["triangle", "rectangle", "cross"]
    raw["data"]["classes"] = ["rectangle", "ellipse", "triangle"]  # data.classes wins over labelmap.txt
    assert build_datasets(config_from_dict(raw))[0].class_names == ["rectangle", "ellipse", "triangle"]
