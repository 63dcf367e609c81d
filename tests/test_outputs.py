"""No command writes over a file it reads or over user data; outputs are replaced atomically."""

import errno
import json
import os
import stat
import subprocess
import sys

import pytest
from PIL import Image

from sparse_rcnn.common import OutputError, atomic_write, check_outputs, unique_names
from train_fixtures import make_coco, subprocess_env


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, value in (("a.png", 40), ("b.png", 200)):
        Image.new("RGB", (64, 48), (value, value, value)).save(folder / name)
    return folder


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_predict_refuses_output_that_is_an_input(run_cli, tiny_weights, photos, tmp_path):
    image = photos / "a.png"
    before = image.read_bytes()
    rc, errors = run_cli(["predict", str(image), "--weights", tiny_weights, "--output", str(image)])
    assert rc == 2 and "is also an input" in errors[0] and image.read_bytes() == before
    ckpt_before = open(tiny_weights, "rb").read()
    rc, errors = run_cli(["predict", str(image), "--weights", tiny_weights, "--output", tiny_weights])
    assert rc == 2 and "is also an input" in errors[0] and open(tiny_weights, "rb").read() == ckpt_before
    # the same file through another path (a symlink) is the same file
    os.symlink(image, tmp_path / "link.png")
    rc, errors = run_cli(["predict", str(image), "--weights", tiny_weights, "--output", str(tmp_path / "link.png")])
    assert rc == 2 and image.read_bytes() == before


def test_save_vis_never_into_the_input_folder(run_cli, tiny_weights, photos):
    before = _bytes(photos)
    rc, errors = run_cli(["predict", str(photos), "--weights", tiny_weights, "--save-vis", str(photos)])
    assert rc == 2 and "holds input images" in errors[0]
    assert _bytes(photos) == before


def test_drawings_of_inputs_with_the_same_stem_get_distinct_names(run_cli, tiny_weights, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGB", (64, 48), (10, 10, 10)).save(tmp_path / "a" / "x.png")
    Image.new("RGB", (64, 48), (250, 250, 250)).save(tmp_path / "b" / "x.jpg")
    vis = tmp_path / "vis"
    rc, _ = run_cli(
        [
            "predict",
            str(tmp_path / "a" / "x.png"),
            str(tmp_path / "b" / "x.jpg"),
            "--weights",
            tiny_weights,
            "--save-vis",
            str(vis),
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in vis.iterdir()) == ["x-2.png", "x.png"]
    # each drawing is of its own image (dark vs light background)
    assert Image.open(vis / "x.png").getpixel((0, 0))[0] < 128 < Image.open(vis / "x-2.png").getpixel((0, 0))[0]


def test_unique_names_never_collide():
    paths = ["a/x.png", "b/x.jpg", "c/x-2.png", "d/x.bmp", "y.png"]
    names = unique_names(paths)
    assert len(set(names)) == len(names) == 5
    assert names[0] == "x.png" and names[2] == "x-2.png" and names[4] == "y.png"


def test_eval_refuses_writing_over_its_annotations(run_cli, tmp_path):
    ann, images = make_coco(tmp_path, [(48, 64)] * 2)
    before = ann.read_bytes()
    rc, errors = run_cli(
        ["eval", "--weights", "x.pth", "--ann", str(ann), "--images", str(images), "--output", str(ann)]
    )
    assert rc == 2 and "is also an input" in errors[0] and ann.read_bytes() == before
    rc, errors = run_cli(
        [
            "eval",
            "--weights",
            "x.pth",
            "--ann",
            str(ann),
            "--images",
            str(images),
            "--output",
            str(tmp_path / "m.json"),
            "--results",
            str(tmp_path / "m.json"),
        ]
    )
    assert rc == 2 and "same file" in errors[0]


def test_export_and_convert_refuse_their_input(run_cli, tiny_weights):
    before = open(tiny_weights, "rb").read()
    assert run_cli(["export", "--weights", tiny_weights, "--output", tiny_weights])[0] == 2
    assert run_cli(["convert", tiny_weights, tiny_weights])[0] == 2
    assert open(tiny_weights, "rb").read() == before


def test_demo_refuses_a_folder_of_user_data(run_cli, tmp_path):
    user = tmp_path / "work"
    (user / "data").mkdir(parents=True)
    (user / "data" / "annotations.json").write_text('{"mine": 1}')
    rc, errors = run_cli(["demo", "--output-dir", str(user), "--max-iters", "1"])
    assert rc == 2 and "not empty" in errors[0]
    assert (user / "data" / "annotations.json").read_text() == '{"mine": 1}'
    assert sorted(p.name for p in user.iterdir()) == ["data"]


def test_atomic_write_keeps_the_previous_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as out:
            out.file.write("half")
            raise RuntimeError("late error")
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left


def test_atomic_write_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "a.pth", "wb") as out:
            out.file.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.pth").st_mode) == 0o640


def test_disk_full_is_one_line_and_keeps_the_checkpoint(run_cli, tiny_weights, tmp_path, monkeypatch):
    import torch

    dst = tmp_path / "converted.pth"
    dst.write_bytes(b"previous")

    def full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    rc, errors = run_cli(["convert", tiny_weights, str(dst)])
    assert rc == 2 and errors == [f"{dst}: No space left on device"]
    assert dst.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["converted.pth"]


def test_output_dir_that_is_a_file(run_cli, tmp_path):
    (tmp_path / "f").write_text("mine")
    rc, errors = run_cli(["demo", "--output-dir", str(tmp_path / "f"), "--max-iters", "1"])
    assert rc == 2 and (tmp_path / "f").read_text() == "mine"
    with pytest.raises(OutputError, match="not a folder"):
        check_outputs([], [], folders=[tmp_path / "f"])


def test_predict_late_error_keeps_previous_output_and_writes_partial(
    run_cli, tiny_weights, photos, tmp_path, monkeypatch
):
    import sparse_rcnn.engine.file_prediction as file_prediction

    out = tmp_path / "result.json"
    out.write_text('["previous"]')
    real = file_prediction.to_record
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("late failure")  # e.g. a fixed-shape ONNX graph given another size
        return real(*args)

    monkeypatch.setattr(file_prediction, "to_record", failing)
    with pytest.raises(RuntimeError, match="late failure"):
        run_cli(["predict", str(photos), "--weights", tiny_weights, "--output", str(out)])
    assert out.read_text() == '["previous"]'
    partial = json.loads((tmp_path / "result.json.partial").read_text())
    assert len(partial) == 1 and partial[0]["image"].endswith("a.png")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


_SLOW_PREDICT = """
import sys, time
import sparse_rcnn.engine.file_prediction as p
real = p.to_record
def slow(*a):
    print("record", flush=True, file=sys.stderr)
    time.sleep(0.5)
    return real(*a)
p.to_record = slow
from sparse_rcnn import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(2, 130), (15, 143)])
def test_predict_stopped_by_a_signal(tiny_weights, tmp_path, signum, status):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        Image.new("RGB", (64, 48), (i, i, i)).save(folder / f"{i:03d}.png")
    out = tmp_path / "r.json"
    out.write_text('["previous"]')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SLOW_PREDICT,
            "predict",
            str(folder),
            "--weights",
            tiny_weights,
            "--output",
            str(out),
            "--workers",
            "2",
        ],
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:  # the first record: workers are running
        if line.startswith("record"):
            break
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert out.read_text() == '["previous"]'
    partial = json.loads((tmp_path / "r.json.partial").read_text())
    assert 1 <= len(partial) < 40


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's read-only file system")
def test_read_only_destinations_are_one_line(run_cli, tiny_weights, photos):
    for argv in (
        ["export", "--weights", tiny_weights, "--output", "/proc/self/x.onnx"],
        ["convert", tiny_weights, "/proc/self/x.pth"],
        ["predict", str(photos), "--weights", tiny_weights, "--save-vis", "/proc/self/vis"],
    ):
        rc, errors = run_cli(argv)
        assert rc == 2 and len(errors) == 1 and "/proc/self" in errors[0], (argv, errors)


def test_unreadable_input_is_one_line(run_cli, tiny_weights, tmp_path):
    (tmp_path / "ann.json").mkdir()  # open() fails with an OSError naming the path, as for permission denied
    (tmp_path / "images").mkdir()
    rc, errors = run_cli(
        ["eval", "--weights", tiny_weights, "--ann", str(tmp_path / "ann.json"), "--images", str(tmp_path / "images")]
    )
    assert rc == 2 and errors == [f"{tmp_path / 'ann.json'}: Is a directory"], errors


def _deny_by_mode(ann, monkeypatch):
    ann.chmod(0)


def _deny_in_the_reader(ann, monkeypatch):
    """What a mode-0 file gives a normal user, for where chmod cannot deny (as root, e.g. in CI)."""

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("sparse_rcnn.data.validation.open", denied, raising=False)


@pytest.mark.parametrize(
    "deny",
    [
        pytest.param(
            _deny_by_mode,
            marks=pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file"),
        ),
        _deny_in_the_reader,
    ],
)
def test_permission_denied_is_one_line(run_cli, tiny_weights, tmp_path, monkeypatch, deny):
    ann, images = make_coco(tmp_path, [(48, 64)] * 2)
    deny(ann, monkeypatch)
    rc, errors = run_cli(["eval", "--weights", tiny_weights, "--ann", str(ann), "--images", str(images)])
    assert rc == 2 and errors == [f"{ann}: Permission denied"], errors
