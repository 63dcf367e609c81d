"""Bad YOLO and Pascal VOC data: one-line reports that name the file and line (or object), the
same `data.bad_annotations=skip` as COCO, and exit status 2 from the command line."""

import logging

import numpy as np
import pytest
import yaml
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.data import CocoDetection, DataError
from sparse_rcnn.data.sources import detect_format, load_split, split_names


def _yolo(root, labels: dict[str, str], names=("cat", "dog"), extra_images=(), data=None):
    """images/train/<stem>.png (100 high, 200 wide) for every label file and extra image."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for stem in [*labels, *extra_images]:
        Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(root / "images" / "train" / f"{stem}.png")
    for stem, text in labels.items():
        (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(yaml.safe_dump(data or {"train": "images/train", "names": list(names)}))
    return root / "data.yaml"


def _dataset(path, policy="error", split="train"):
    return CocoDetection.from_split(load_split(path, split=split), train=False, bad_annotations=policy)


def test_yolo_boxes_are_denormalised_with_the_image_size(tmp_path):
    ds = _dataset(_yolo(tmp_path, {"a": "1 0.5 0.25 0.2 0.1\n"}))
    assert ds.class_names == ["cat", "dog"]
    assert ds.coco.loadAnns(ds.coco.getAnnIds())[0]["bbox"] == pytest.approx([80, 20, 40, 10])


@pytest.mark.parametrize(
    "line, text",
    [
        ("0 1.4 0.5 0.2 0.2", "labels/train/a.txt line 2: x_center 1.4 is outside 0..1"),
        ("2 0.5 0.5 0.2 0.2", "labels/train/a.txt line 2: class 2 is not among the 2 names of data.yaml (0..1)"),
        ("0 0.5 0.5 0.2", "labels/train/a.txt line 2: expected `class x_center y_center width height`"),
        ("0 0.5 0.5 x 0.2", "labels/train/a.txt line 2: 'x' is not a number"),
        ("0 0.5 0.5 0 0.2", "labels/train/a.txt line 2: width 0 is not in (0, 1]"),
        ("0 0.95 0.5 0.2 0.2", "labels/train/a.txt line 2: the box spans x 0.85..1.05"),
    ],
)
def test_bad_yolo_lines_are_reported_with_file_and_line_then_raised_or_skipped(tmp_path, line, text, caplog):
    path = _yolo(tmp_path, {"a": f"0 0.5 0.5 0.2 0.2\n{line}\n"})
    with pytest.raises(DataError, match="1 problem") as e:
        _dataset(path)
    assert text in str(e.value) and "`data.bad_annotations=skip`" in str(e.value)
    with caplog.at_level(logging.WARNING):
        ds = _dataset(path, "skip")
    assert len(ds.coco.getAnnIds()) == 1 and text in caplog.text  # the good line stays


def test_yolo_label_file_without_image_and_image_without_label_file(tmp_path):
    path = _yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, extra_images=["no_labels"])
    (tmp_path / "labels" / "train" / "lost.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    with pytest.raises(
        DataError, match=r"labels/train/lost.txt: label file without an image \(no lost.\* in images/train\)"
    ):
        _dataset(path)
    (tmp_path / "labels" / "train" / "lost.txt").unlink()
    ds = _dataset(path)  # an image without a label file has no objects: legal
    assert len(ds) == 2 and ds.coco.getAnnIds(imgIds=[ds.image_ids[1]]) == []


def test_yolo_data_yaml_variants(tmp_path):
    """names as a mapping, a polygon line, a .txt list of images, and Roboflow's ``../train/images``."""
    root = tmp_path / "ds"
    _yolo(
        root,
        {"a": "1 0.1 0.2 0.3 0.2 0.2 0.4\n", "b": ""},
        data={"train": "../images/train", "val": "val.txt", "names": {0: "cat", 1: "dog"}},
    )
    (root / "val.txt").write_text("./images/train/b.png\n")
    assert split_names(root) == ["train", "val"]
    ds = _dataset(root / "data.yaml")
    assert ds.class_names == ["cat", "dog"] and len(ds) == 2
    assert ds.coco.loadAnns(ds.coco.getAnnIds())[0]["bbox"] == pytest.approx([20, 20, 40, 20])  # the polygon's box
    assert len(_dataset(root, split="val")) == 1


@pytest.mark.parametrize(
    "content, text",
    [
        ("names: [a, b\ntrain: x", "data.yaml is not valid YAML"),
        ("train: images/train\n", "no class names; add `names:`"),
        ("train: images/train\nnames: {0: a, 2: b}", "the keys of names must be 0..1"),
        ("train: images/train\nnames: [a]\nnc: 2", "nc is 2 but names lists 1 classes"),
        ("train: nowhere\nnames: [a]", "not a folder, image or .txt list"),
    ],
)
def test_malformed_data_yaml(tmp_path, content, text):
    _yolo(tmp_path, {"a": ""})
    (tmp_path / "data.yaml").write_text(content)
    with pytest.raises(DataError, match="data.yaml") as e:
        _dataset(tmp_path / "data.yaml")
    assert text in str(e.value)


def _voc(root, xmls: dict[str, str], splits=None):
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for stem, body in xmls.items():
        Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        (root / "Annotations" / f"{stem}.xml").write_text(f"<annotation>{body}</annotation>")
    for split, ids in (splits or {"train": list(xmls)}).items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    return root


def _obj(name, xmin, ymin, xmax, ymax, difficult=0):
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin>"
        f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
    )


SIZE = "<size><width>200</width><height>100</height></size>"


def test_voc_classes_are_the_sorted_names_of_all_files_whatever_the_split(tmp_path):
    root = _voc(
        tmp_path,
        {"1": SIZE + _obj("zebra", 1, 1, 10, 10), "2": SIZE + _obj("ant", 1, 1, 10, 10)},
        splits={"train": ["1"], "val": ["2"], "ant_train": ["2"]},
    )
    assert split_names(root) == ["train", "val"]  # class lists (ant_train.txt) are not splits
    assert _dataset(root).class_names == _dataset(root, split="val").class_names == ["ant", "zebra"]


@pytest.mark.parametrize(
    "body, text",
    [
        (SIZE + _obj("dog", 50, 1, 40, 10), "Annotations/1.xml object 1 (dog): xmax 40 is less than xmin 50"),
        (
            SIZE + _obj("dog", 1, 1, 260, 10),
            "Annotations/1.xml object 1 (dog): xmax/ymax 260/10 lie outside the 200x100 image",
        ),
        (SIZE + _obj("dog", "a", 1, 5, 10), "Annotations/1.xml object 1 (dog): <xmin> 'a' is not a number"),
        (SIZE + _obj("dog", 1, 1, 5, 10, difficult="maybe"), "object 1 (dog): <difficult> must be 0 or 1"),
        (SIZE + "<object><name>dog</name></object>", "Annotations/1.xml object 1 (dog): no <bndbox>"),
        (SIZE + "<object><name>dog</object>", "Annotations/1.xml: is not valid XML (line 1, column"),
    ],
)
def test_bad_voc_files_are_reported_with_file_and_object(tmp_path, body, text):
    root = _voc(tmp_path, {"1": body, "2": SIZE + _obj("dog", 1, 1, 10, 10)})
    with pytest.raises(DataError, match="1 problem") as e:
        _dataset(root)
    assert text in str(e.value)
    assert len(_dataset(root, "skip").coco.getAnnIds()) == 1


def test_voc_missing_files_and_size_from_the_image(tmp_path):
    root = _voc(tmp_path, {"1": _obj("dog", 1, 1, 10, 10)}, splits={"train": ["1", "2"]})  # no <size>: the image's
    with pytest.raises(DataError, match=r"Annotations/2.xml: not found \(listed in ImageSets/Main/train.txt\)"):
        _dataset(root)
    ds = _dataset(root, "skip")
    assert ds.coco.imgs[1]["width"] == 200 and ds.coco.imgs[1]["height"] == 100
    with pytest.raises(DataError, match="has no 'test' split"):
        _dataset(root, split="test")


def test_unknown_format_and_cli_exit_status(tmp_path, caplog):
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(tmp_path)
    path = _yolo(tmp_path / "y", {"a": "0 1.4 0.5 0.2 0.2\n"}, data={"val": "images/train", "names": ["a"]})
    assert detect_format(path.parent) == "yolo"
    code = cli.main(["eval", "--weights", str(tmp_path / "none.pth"), "--data", str(path)])
    assert code == 2  # the data is checked first, and the error names the line and the way out
    err, _ = caplog.text, caplog.clear()
    assert "labels/train/a.txt line 1: x_center 1.4 is outside 0..1" in err and "--set data.bad_annotations=skip" in err
    assert cli.main(["eval", "--weights", "x.pth", "--data", str(tmp_path)]) == 2
    err = caplog.text
    assert "cannot tell the format" in err and "name it with --data-format" in err
