"""The last sharp edges (#30): silently wrong data refused, and one line (no traceback) where a
user's file, path or value is at fault."""

import importlib.util
import json
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sparse_rcnn.cli import main
from sparse_rcnn.data import CocoDetection, DataError, load_split
from test_data import write_coco
from three_formats import write_three_formats
from tiny import save_tiny_checkpoint


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


@pytest.fixture
def shapes(tmp_path):
    """The same 2 images and boxes as COCO, YOLO and VOC (classes cat, dog): {format: path}."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    return write_three_formats(tmp_path / "d", images, [[(0, 10, 10, 60, 60)], [(1, 5, 5, 100, 100)]], ["cat", "dog"])


def test_an_output_folder_inside_a_split_being_read_is_refused(shapes, tiny_weights, run_cli):
    split = shapes["yolo"].parent / "images" / "val"  # every image in it is an image of the split
    for argv, out in (
        (["show-data", "--data", str(shapes["yolo"]), "--split", "val", "--output"], split / "show"),
        (["eval", "--weights", tiny_weights, "--data", str(shapes["yolo"]), "--report"], split / "report"),
        (["convert-data", str(shapes["yolo"]), "--to", "coco"], split / "as-coco"),
    ):
        rc, errors = run_cli(argv + [str(out)])
        assert rc == 2 and f"output folder '{out}' lies inside '{split}', the images of the dataset" in errors[0]
        assert sorted(p.name for p in split.iterdir()) == ["img0.png", "img1.png"]


def test_score_thr_auto_without_thresholds_is_refused_before_any_output(tiny_weights, run_cli, tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (64, 48)).save(image)
    out = tmp_path / "out.json"
    rc, errors = run_cli(
        ["predict", str(image), "--weights", tiny_weights, "--output", str(out), "--score-thr", "auto"]
    )
    assert rc == 2 and len(errors) == 1 and errors[0].startswith("--score-thr auto needs score thresholds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no out.json.partial


@pytest.mark.parametrize("value, text", [("30", "(for 30 %, give 0.3)"), ("nan", ""), ("-0.1", "")])
def test_score_thr_outside_0_1_is_a_usage_error(tiny_weights, tmp_path, capsys, value, text):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path / "a.png"), "--weights", tiny_weights, "--score-thr", value])
    assert (
        e.value.code == 2
        and f"'{value}': a score threshold lies between 0 and 1 {text}".strip() in capsys.readouterr().err
    )


@pytest.mark.slow
def test_convert_data_stopped_by_sigterm_leaves_no_partial_folder(shapes, tmp_path):
    out = tmp_path / "out"
    script = (
        "import os, signal, sys\n"
        "import sparse_rcnn.data.convert as convert\n"
        "place = convert._place\n"
        "def killed(source, target):\n"
        "    place(source, target)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "convert._place = killed\n"
        "from sparse_rcnn.cli.main import main\n"
        f"sys.exit(main(['convert-data', {str(shapes['coco'])!r}, '--to', 'yolo', {str(out)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-2000:]
    assert "SIGTERM: stopped; nothing was written to" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no .out.partial-* folder


def test_a_symlink_loop_among_the_inputs_is_one_skipped_image(tiny_weights, run_cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 48)).save(photos / "ok.png")
    os.symlink("b.png", photos / "a.png")
    os.symlink("a.png", photos / "b.png")
    argv = ["predict", str(photos / "a.png"), str(photos / "ok.png"), "--weights", tiny_weights]
    rc, errors = run_cli(argv + ["--output", str(tmp_path / "out.json"), "--save-vis", str(tmp_path / "vis")])
    assert rc == 1 and errors == [f"skipped {photos / 'a.png'}: a symlink loop", "1 of 2 images failed"]
    assert len(json.loads((tmp_path / "out.json").read_text())) == 1


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """A tiny model exported at a fixed 32x32 input (its images resize to 64x48)."""
    folder = tmp_path_factory.mktemp("onnx")
    weights = save_tiny_checkpoint(folder / "tiny.pth", ["cat", "dog", "bird"], test_scale=(64, 48))
    argv = ["export", "--weights", str(weights), "--output", str(folder / "small.onnx"), "--size", "32x32"]
    assert main(argv + ["--exporter", "torchscript"]) == 0
    return folder / "small.onnx"


def test_onnx_files_that_cannot_run_the_input_are_one_line(small_onnx, run_cli, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    image = tmp_path / "a.png"
    Image.new("RGB", (64, 48)).save(image)
    rc, errors = run_cli(["predict", str(image), "--onnx", str(small_onnx)])
    assert rc == 2 and errors == [
        "a resized image of 64x64 (w x h, padded) does not fit this graph's fixed input 32x32; export it with "
        "--dynamic shapes, or with a --size covering it"
    ]
    rc, errors = run_cli(["predict", str(image), "--onnx", str(tmp_path)])
    assert rc == 2 and errors == [f"ONNX model '{tmp_path}' is a folder; pass the .onnx file inside it"]
    # another model's graph that carries our metadata
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("x", "y"))
    other = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]))
    other.opset_import[0].version = 17
    for prop in onnx.load(str(small_onnx)).metadata_props:
        other.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(other, str(tmp_path / "other.onnx"))
    for runtime in ("onnxruntime", "openvino") if importlib.util.find_spec("openvino") else ("onnxruntime",):
        rc, errors = run_cli(["predict", str(image), "--onnx", str(tmp_path / "other.onnx"), "--runtime", runtime])
        assert rc == 2 and "its inputs (x) and outputs (y) are not those of a Sparse R-CNN graph" in errors[0]


class _System:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_raw_pickle_with_a_forbidden_global_is_refused_naming_it(tmp_path, run_cli, capsys):
    path = tmp_path / "raw.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _System()}, f, protocol=4)  # torch stops at opcode 149 before the global
    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    rc, errors = run_cli(["predict", str(tmp_path / "a.png"), "--weights", str(path)])
    assert rc == 2 and errors == [
        f"checkpoint '{path}' holds pickled Python objects (posix.system) that safe loading refuses; if you trust "
        "it, re-save only its tensors/state_dict"
    ]
    assert "Warning" not in capsys.readouterr().err


def test_a_data_yaml_with_aliases_is_refused_before_expanding(tmp_path, run_cli):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]" for k in range(1, 4)
    ]  # 10**4 names (10**9 with 9)
    (tmp_path / "data.yaml").write_text("\n".join(lines) + "\ntrain: images\nnames: *a3\n")
    (tmp_path / "images").mkdir()
    rc, errors = run_cli(["show-data", "--data", str(tmp_path / "data.yaml"), "--output", str(tmp_path / "out")])
    assert rc == 2 and "data.yaml is not valid YAML: YAML aliases (*a0) are not accepted here" in errors[0]


def test_label_files_with_a_bom_are_read_and_a_non_utf8_split_list_is_one_line(shapes, tiny_weights, run_cli):
    labels = shapes["yolo"].parent / "labels" / "val"
    for label in labels.glob("*.txt"):
        label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())  # what Notepad writes
    rc, errors = run_cli(["eval", "--weights", tiny_weights, "--data", str(shapes["yolo"])])
    assert rc == 0, errors
    listing = shapes["voc"] / "ImageSets" / "Main" / "val.txt"
    listing.write_bytes(b"img0\nimg\xe91\n")  # Latin-1
    rc, errors = run_cli(["eval", "--weights", tiny_weights, "--data", str(shapes["voc"])])
    assert rc == 2 and errors == [f"{listing}: not UTF-8 text (byte 0xe9 at offset 8); save it as UTF-8"]


def test_a_malformed_set_value_is_one_line_naming_the_key(tmp_path, tiny_weights, run_cli):
    rc, errors = run_cli(["eval", "--weights", tiny_weights, "--data", str(tmp_path), "--set", "data.classes=[a, b"])
    assert rc == 2 and errors[0].startswith("config key 'data.classes': '[a, b' is not a valid YAML value")
    argv = ["train", "--config", "sparse_rcnn_r50_fpn_1x_coco", "--output-dir", str(tmp_path / "out")]
    rc, errors = run_cli(argv + ["--set", "train.class_map={truck: car"])
    assert rc == 2 and errors[0].startswith("config key 'train.class_map': '{truck: car' is not a valid YAML value")


def test_convert_data_to_voc_reads_back_names_with_spaces_and_clashing_stems(tmp_path, run_cli):
    src = tmp_path / "src"
    names = ["my photo.png", "a/x.png", "b/x.png"]
    images = []
    for k, name in enumerate(names, 1):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (40 * k, 0, 0)).save(src / name)
        images.append({"id": k, "file_name": name, "width": 64, "height": 48})
    anns = [
        {"id": k, "image_id": k, "category_id": 1, "bbox": [4, 4, 20, 10 + k], "area": 1, "iscrowd": 0}
        for k in (1, 2, 3)
    ]
    ann = src / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cat"}]}))
    out = tmp_path / "voc"
    assert run_cli(["convert-data", str(ann), "--to", "voc", str(out)])[0] == 0
    back = CocoDetection.from_split(load_split(out, split="train"), train=False)  # the converter's own output
    assert len(back) == 3 and sorted(a["bbox"][3] for a in back.coco.dataset["annotations"]) == [11, 12, 13]
    written = (out / "ImageSets" / "Main" / "train.txt").read_text() + "".join(
        p.read_text() for p in (out / "Annotations").iterdir()
    )
    assert str(tmp_path) not in written and "my photo" not in written  # no absolute path, no space in an id


def test_a_voc_filename_missing_from_jpegimages_is_reported_when_the_id_image_is_used(shapes, caplog):
    xml = shapes["voc"] / "Annotations" / "img0.xml"
    xml.write_text(xml.read_text().replace("<filename>img0.png</filename>", "<filename>img0.jpg</filename>"))
    with caplog.at_level(logging.WARNING):
        split = load_split(shapes["voc"], split="val")
    assert split.dataset["images"][0]["file_name"] == "img0.png"
    assert "1 <filename>(s) name no file in JPEGImages/" in caplog.text
    assert "Annotations/img0.xml: 'img0.jpg' -> 'img0.png'" in caplog.text
