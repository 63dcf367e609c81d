"""Bad input (images, config, weights) gives a one-line error naming the problem, never a traceback.

Images go through ``images.read_image`` (used by predict, training and evaluation) and through
``sparse-rcnn predict``, which carries on past a bad image and exits 1 listing the failures.
Config and checkpoint problems stop the command with exit status 2 and one line.
"""

import argparse
import io
import json
import logging
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.data import images
from sparse_rcnn.checkpoints import save_checkpoint
from sparse_rcnn.data.images import ImageError, expand_image_paths, read_image
from test_data import ANNS, IMAGES, write_coco
from test_data import BAD as BAD_ANNOTATIONS
from tiny import save_tiny_checkpoint, tiny_config

SCALE = (64, 48)  # a small test scale keeps each tiny-model forward in milliseconds


def scene(h: int = 24, w: int = 40) -> np.ndarray:
    """An asymmetric RGB image: red block top-left, green bottom-right, blue stripe at the top."""
    img = np.full((h, w, 3), 90, np.uint8)
    img[: h // 3, : w // 4] = (255, 0, 0)
    img[-h // 3 :, -w // 4 :] = (0, 255, 0)
    img[0:2, :] = (0, 0, 255)
    return img


def png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def make_bad_files(folder: Path) -> dict[str, str]:
    """Write one file per failure kind; returns {file name: word its error message must contain}."""
    folder.mkdir(parents=True, exist_ok=True)
    png, jpg = io.BytesIO(), io.BytesIO()
    Image.fromarray(scene()).save(png, format="PNG")
    Image.fromarray(scene()).save(jpg, format="JPEG", quality=95)
    png, jpg = png.getvalue(), jpg.getvalue()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "corrupt.png").write_bytes(png[:16] + bytes(range(256)) * 4)
    (folder / "notes.jpg").write_text("this is a text file, not a photo\n")
    (folder / "huge.png").write_bytes(png_header(50_000, 50_000))
    return {"empty.png": "empty", "truncated.png": "truncated", "truncated.jpg": "truncated",
            "corrupt.png": "not an image", "notes.jpg": "not an image", "huge.png": "MP limit"}


# ---------------------------------------------------------------------------------------------
# read_image


def test_unusable_files_raise_one_line_errors_naming_file_and_cause(tmp_path):
    for name, cause in make_bad_files(tmp_path).items():
        with pytest.raises(ImageError) as e:
            read_image(tmp_path / name)
        msg = str(e.value)
        assert msg.startswith(str(tmp_path / name)) and cause in msg and "\n" not in msg, msg
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)


def rgb_cv2(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "P+transparency", "I;16", "I;16 dark"])
def test_image_modes_decode_like_opencv(tmp_path, mode):
    """MMDetection decodes with cv2.imread(IMREAD_COLOR); every PNG mode must give its pixels."""
    rgb = scene()
    path = tmp_path / "x.png"
    if mode == "P+transparency":
        Image.fromarray(rgb).convert("P").save(path, transparency=0)
    elif mode.startswith("I;16"):  # 16-bit grey: OpenCV keeps the high byte, also for dark images
        grey = (np.arange(rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]) * (68 if mode == "I;16" else 1))
        Image.fromarray(grey.astype(np.uint16)).save(path)
        assert Image.open(path).mode == "I;16"
    else:
        Image.fromarray(rgb).convert(mode).save(path)
    out = read_image(path)
    assert out.shape == (*rgb.shape[:2], 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb_cv2(path))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(scene()).convert("CMYK").save(path, quality=95)
    out = read_image(path)
    assert out.shape == (24, 40, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - scene().astype(int)).mean() < 6  # JPEG loss only, no colour inversion
    assert np.abs(out.astype(int) - rgb_cv2(path)).max() <= 2  # OpenCV's CMYK conversion rounds differently


# EXIF orientation -> how the displayed image is made from the stored pixels (TIFF/EXIF spec).
ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),  # rotate 90 degrees clockwise
    7: lambda a: np.rot90(a, k=2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),  # rotate 90 degrees counter-clockwise
}


def save_with_orientation(path: Path, stored: np.ndarray, orientation: int) -> None:
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, exif=exif, quality=95)


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_gives_the_displayed_frame(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    save_with_orientation(path, scene(), orientation)
    with Image.open(path) as raw:  # the stored pixels, decoded without looking at EXIF
        stored = np.asarray(raw.convert("RGB"))
    out = read_image(path)
    np.testing.assert_array_equal(out, ORIENTATIONS[orientation](stored))
    ref = rgb_cv2(path)  # MMDetection decodes with OpenCV, which applies EXIF orientation too
    assert ref.shape == out.shape and np.abs(ref.astype(int) - out).mean() < 1
    if orientation == 6:  # clockwise: the red block that was top-left of the stored image is top-right
        assert out.shape == (40, 24, 3) and out[2, -5, 0] > 200 and out[2, -5, 1] < 80 and out[2, 2, 0] < 150


def test_size_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    # Headers only: decoding these would fail as "truncated", so the limit message proves no decode.
    (tmp_path / "a.png").write_bytes(png_header(10_000, 10_001))  # between Pillow's 89 and 179 MP
    with pytest.raises(ImageError, match=r"a\.png: 10000x10001 is larger than the 100 MP limit; downscale"):
        read_image(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(png_header(60_000, 40_000))  # Pillow refuses it while opening
    with pytest.raises(ImageError, match=r"b\.png: 2400 MP is larger than the 100 MP limit"):
        read_image(tmp_path / "b.png")
    Image.fromarray(scene()).save(tmp_path / "c.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 24 * 40 - 1)
    with pytest.raises(ImageError, match=r"c\.png: 40x24 is larger"):
        read_image(tmp_path / "c.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 24 * 40)
    assert read_image(tmp_path / "c.png").shape == (24, 40, 3)


def test_folder_expansion(tmp_path):
    Image.fromarray(scene()).save(tmp_path / "b.png")
    Image.fromarray(scene()).save(tmp_path / "a.JPG")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert expand_image_paths([tmp_path, "x.png"]) == [str(tmp_path / "a.JPG"), str(tmp_path / "b.png"), "x.png"]
    with pytest.raises(ImageError, match=r"sub: folder holds no images"):
        expand_image_paths([tmp_path / "sub"])


# ---------------------------------------------------------------------------------------------
# sparse-rcnn predict


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", ["cat", "dog", "bird"], test_scale=SCALE))


def run(argv: list[str], caplog) -> tuple[int, list[str]]:
    """Run the CLI in-process; returns the exit status and the logged error lines."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparse_rcnn"):
        rc = cli.main(argv)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert all("Traceback" not in e and "\n" not in e for e in errors), errors
    return rc, errors


def test_predict_carries_on_past_bad_images_and_lists_them(tmp_path, weights, caplog):
    folder = tmp_path / "imgs"
    bad = make_bad_files(folder)
    Image.fromarray(scene()).save(folder / "good.png")
    save_with_orientation(folder / "rotated.jpg", scene(), 6)
    Image.fromarray(scene()).convert("L").save(folder / "grey.png")
    out = tmp_path / "out.json"
    rc, errors = run(["predict", str(folder), str(tmp_path / "missing.png"), "--weights", weights,
                      "--output", str(out), "--batch-size", "2"], caplog)
    assert rc == 1
    records = {Path(r["image"]).name: r for r in json.loads(out.read_text())}
    assert set(records) == {"good.png", "rotated.jpg", "grey.png"}
    assert (records["rotated.jpg"]["width"], records["rotated.jpg"]["height"]) == (24, 40)  # displayed frame
    assert (records["good.png"]["width"], records["good.png"]["height"]) == (40, 24)
    assert all(len(r["detections"]) == 8 for r in records.values())
    for name, cause in {**bad, "missing.png": "no such file"}.items():
        assert any(name in e and cause in e for e in errors), (name, errors)
    assert errors[-1] == f"{len(bad) + 1} of {len(bad) + 4} images failed"


def test_predict_with_worker_processes_reports_failures_too(tmp_path, weights, caplog):
    Image.fromarray(scene()).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    rc, errors = run(["predict", str(tmp_path), "--weights", weights, "--workers", "1",
                      "--output", str(tmp_path / "o.json")], caplog)
    assert rc == 1 and any("bad.png" in e for e in errors)
    assert [Path(r["image"]).name for r in json.loads((tmp_path / "o.json").read_text())] == ["good.png"]


def test_predict_on_extreme_sizes(tmp_path, weights, caplog):
    """A 3000x1 strip resized to fit 64x48 would round to height 0 without the 1-pixel floor."""
    Image.fromarray(np.zeros((1, 3000, 3), np.uint8)).save(tmp_path / "strip.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    rc, _ = run(["predict", str(tmp_path), "--weights", weights, "--output", str(tmp_path / "o.json")], caplog)
    sizes = [(r["width"], r["height"]) for r in json.loads((tmp_path / "o.json").read_text())]
    assert rc == 0 and sizes == [(1, 1), (3000, 1)]


def test_python_api_inputs():
    from sparse_rcnn.data import to_image_tensor

    rgb = scene()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    for x in (rgb, rgba, rgb[..., 0], rgb[..., :1], Image.fromarray(rgb).convert("P")):
        out = to_image_tensor(x)
        assert out.shape == (3, 24, 40) and out.dtype == torch.uint8
    assert torch.equal(to_image_tensor(rgba), to_image_tensor(rgb))
    with pytest.raises(ValueError, match=r"uint8 \(0-255\) array, got float32; for 0-1 floats"):
        to_image_tensor(rgb.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB array, got shape \(24, 40, 2\)"):
        to_image_tensor(rgb[..., :2])
    with pytest.raises(ValueError, match=r"\(3, H, W\) tensor, got shape \(24, 40, 3\)"):
        to_image_tensor(torch.from_numpy(rgb))
    with pytest.raises(ValueError, match="empty image"):
        to_image_tensor(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(TypeError, match="cannot use bytes as an image"):
        to_image_tensor(b"\x89PNG")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--output", "{tmp}/no/such/dir/out.json"], "cannot write --output"),
        (["--save-vis", "{tmp}/file.txt"], "exists and is not a folder"),
        (["{tmp}/empty_dir"], "empty_dir: folder holds no images"),
        (["--winograd", "--dtype", "bf16"], "--winograd goes with --dtype fp32"),
    ],
)
def test_predict_unusable_arguments(tmp_path, weights, caplog, extra, message):
    Image.fromarray(scene()).save(tmp_path / "good.png")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    rc, errors = run(["predict", str(tmp_path / "good.png"), *[a.format(tmp=tmp_path) for a in extra],
                      "--weights", weights], caplog)
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors


@pytest.mark.parametrize(
    "option, message",
    [(["--batch-size", "0"], "must be at least 1"), (["--workers", "-1"], "must be 0 or more"),
     (["--device", "gpu"], "unknown device 'gpu'"), (["--device", "cuda:99"], "cuda:99")],
)
def test_predict_bad_options_are_usage_errors(tmp_path, weights, capsys, option, message):
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", str(tmp_path), "--weights", weights, *option])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Config and weights


@pytest.fixture
def image(tmp_path) -> str:
    Image.fromarray(scene()).save(tmp_path / "img.png")
    return str(tmp_path / "img.png")


def fake_mmdet_state(depth_blocks: int, proposals: int, classes: int = 80, stages: int = 6) -> dict:
    """The keys (with tiny tensors) by which an MMDetection checkpoint's architecture is read."""
    state = {f"backbone.layer3.{i}.conv1.weight": torch.zeros(1) for i in range(depth_blocks)}
    state["rpn_head.init_proposal_bboxes.weight"] = torch.zeros(proposals, 4)
    state.update({f"roi_head.bbox_head.{k}.fc_cls.weight": torch.zeros(classes, 1) for k in range(stages)})
    return state


def test_checkpoint_errors(tmp_path, weights, image, caplog):
    good = Path(weights).read_bytes()
    (tmp_path / "truncated.pth").write_bytes(good[: len(good) // 2])
    torch.save({"foo": 1}, tmp_path / "foreign.pth")
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1), "rpn_head.rpn_conv.weight": torch.zeros(1)}},
               tmp_path / "faster_rcnn.pth")
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, tmp_path / "pickled.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    ckpt = torch.load(weights, weights_only=True)
    ckpt["config"]["model"]["anchor_free_magic"] = 1  # a checkpoint from a future version
    save_checkpoint(ckpt, tmp_path / "future.pth")
    torch.save(fake_mmdet_state(6, 100), tmp_path / "no_state_dict_key.pth")
    torch.save({"meta": {}, "state_dict": fake_mmdet_state(6, 100)}, tmp_path / "r50_100.pth")
    cases = {
        "truncated.pth": "unreadable, truncated or not a PyTorch file",
        "text.pth": "unreadable, truncated or not a PyTorch file",
        "foreign.pth": "not a Sparse R-CNN checkpoint (no 'state_dict' or sparse-rcnn 'model' entry; it holds: foo)",
        "faster_rcnn.pth": "not a Sparse R-CNN checkpoint: its state_dict has no rpn_head.init_proposal_bboxes",
        "pickled.pth": "holds pickled Python objects (argparse.Namespace)",
        "future.pth": "config this version cannot use: unknown config key 'model.anchor_free_magic'",
        "no_state_dict_key.pth": "a bare state_dict without its config",
        "missing.pth": "not found",
        "": "is a directory",
    }
    for name, message in cases.items():
        rc, errors = run(["predict", image, "--weights", str(tmp_path / name)], caplog)
        assert rc == 2 and len(errors) == 1 and message in errors[0], (name, errors)
    # an MMDetection R-50 / 100-proposal checkpoint named as another zoo model: the differences are named
    for name, diff in [("sparse_rcnn_r101_fpn_mstrain_480-800_3x_coco", "backbone"),
                       ("sparse_rcnn_r50_fpn_300_proposals_crop_mstrain_480-800_3x_coco", "num_proposals")]:
        rc, errors = run(["predict", image, "--model", name, "--weights", str(tmp_path / "r50_100.pth")], caplog)
        assert rc == 2 and f"does not fit {name!r}: it differs in {diff}" in errors[0], errors


def test_weights_for_another_architecture_list_mismatched_keys(tmp_path, weights, image, caplog):
    ckpt = torch.load(weights, weights_only=True)
    ckpt["config"]["model"]["num_proposals"] = 16  # state has 8
    save_checkpoint(ckpt, tmp_path / "proposals.pth")
    rc, errors = run(["predict", image, "--weights", str(tmp_path / "proposals.pth")], caplog)
    assert rc == 2 and "does not fit this model architecture" in errors[0]
    assert "proposal_boxes.weight (8, 4) vs (16, 4)" in errors[0]
    # a resnet18 state loaded as resnet34 (MMDetection format + a YAML config): missing keys listed
    from test_checkpoints import to_mmdet

    torch.save({"meta": {}, "state_dict": to_mmdet(ckpt["model"])}, tmp_path / "mmdet_r18.pth")
    cfg = tiny_config(test_scale=SCALE)
    (tmp_path / "r34.yaml").write_text(json.dumps({"model": {**cfg.to_dict()["model"],
                                                             "backbone": "resnet34"}}))
    rc, errors = run(["predict", image, "--model", str(tmp_path / "r34.yaml"),
                      "--weights", str(tmp_path / "mmdet_r18.pth")], caplog)
    assert rc == 2 and "missing (" in errors[0] and "backbone.body.layer1.2.conv1.weight" in errors[0], errors


def test_unknown_config_name_suggests_the_closest(image, caplog):
    rc, errors = run(["predict", image, "--model", "sparse_rcnn_r50_fpn_1x_cocoo"], caplog)
    assert rc == 2 and "did you mean 'sparse_rcnn_r50_fpn_1x_coco'" in errors[0]
    rc, errors = run(["predict", image, "--model", "yolo"], caplog)
    assert rc == 2 and "unknown config 'yolo'" in errors[0]


@pytest.mark.parametrize(
    "config, override, message",
    [
        ("sparse_rcnn_r50_fpn_1x_coco", "train.lr_step=[1,2]", "unknown config key 'train.lr_step'; did you mean 'train.lr_steps'?"),
        ("sparse_rcnn_r50_fpn_1x_coco", "model.num_proposals=abc", "config key 'model.num_proposals' must be int, got 'abc'"),
        ("sparse_rcnn_r50_fpn_1x_coco", "model.test_scale=[800]", "config key 'model.test_scale' must have 2 items"),
        ("sparse_rcnn_r50_fpn_1x_coco", "model.backbone=resnet152", "'model.backbone' must be one of resnet18, resnet34"),
        ("sparse_rcnn_r50_fpn_1x_coco", "model.num_heads=7", "'model.num_heads' (7) must divide model.fpn_channels (256)"),
        ("sparse_rcnn_r50_fpn_1x_coco", "train.lr", "override 'train.lr' must look like section.key=value"),
        ("sparse_rcnn_r50_fpn_1x_cocoo", "train.lr=1e-4", "did you mean 'sparse_rcnn_r50_fpn_1x_coco'?"),
        ("{tmp}/typo.yaml", "train.lr=1e-4", "unknown config key 'model.num_proposal'; did you mean 'model.num_proposals'?"),
        ("{tmp}/broken.yaml", "train.lr=1e-4", "is not valid YAML"),
        ("{tmp}/absent.yaml", "train.lr=1e-4", "absent.yaml' not found"),
    ],
)
def test_config_errors_through_train_set(tmp_path, caplog, config, override, message):
    (tmp_path / "typo.yaml").write_text("model:\n  num_proposal: 10\n")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    rc, errors = run(["train", "--config", config.format(tmp=tmp_path), "--output-dir", str(tmp_path / "out"),
                      "--set", override], caplog)
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()  # stopped before anything was written


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.bad_anotations=skip", "unknown config key 'data.bad_anotations'; did you mean 'data.bad_annotations'?"),
        ("data.flip_prob=abc", "config key 'data.flip_prob' must be float, got 'abc'"),
        ("data.flip_prob=1.5", "config key 'data.flip_prob' must be <= 1"),
        ("data.bad_annotations=ignore", "config key 'data.bad_annotations' must be one of error, skip"),
    ],
)
def test_data_config_errors_through_eval_set(tmp_path, weights, caplog, override, message):
    rc, errors = run(["eval", "--weights", weights, "--ann", str(tmp_path / "a.json"), "--images", str(tmp_path),
                      "--set", override], caplog)
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors


def test_real_process_prints_one_line_and_no_traceback(tmp_path, weights):
    """The same through a real process: what a user sees on stderr."""
    Image.fromarray(scene()).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_text("not an image")
    cmd = [sys.executable, "-m", "sparse_rcnn.cli", "predict", str(tmp_path), "--weights", weights]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"ERROR skipped {tmp_path / 'bad.jpg'}: not an image" in proc.stderr
    assert [Path(r["image"]).name for r in json.loads(proc.stdout)] == ["good.png"]


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_bad_annotations_through_eval_and_train(tmp_path, weights, caplog, case):
    """Every annotation problem the loader detects reaches the user as one line with the way out."""
    extra_images, extra_anns, text = BAD_ANNOTATIONS[case]
    ann, img = write_coco(tmp_path, IMAGES + extra_images, ANNS + extra_anns)
    if case == "missing file":
        (img / "9.png").unlink()
    rc, errors = run(["eval", "--weights", weights, "--ann", str(ann), "--images", str(img)], caplog)
    assert rc == 2 and len(errors) == 1 and text in errors[0] and "data.bad_annotations=skip" in errors[0], errors
    out = tmp_path / "out"
    rc, errors = run(["train", "--config", "sparse_rcnn_r18_demo_shapes", "--output-dir", str(out),
                      "--set", f"data.train_ann={ann}", "--set", f"data.train_images={img}",
                      "--set", f"data.val_ann={ann}", "--set", f"data.val_images={img}"], caplog)
    assert rc == 2 and len(errors) == 1 and text in errors[0], errors
    assert not list(out.glob("*.pth"))  # stopped before any checkpoint was written
