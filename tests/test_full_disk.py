"""A real small filesystem (a tmpfs) that fills up or is read-only: one line naming the path,
exit status 2, the previous file intact and no temporary file left. Skipped without root or
where mounting fails."""

import errno
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from sparse_rcnn.checkpoints import save_checkpoint
from three_formats import write_three_formats
from tiny import save_whole_image_checkpoint
from train_fixtures import make_coco, tiny_config_dict, write_yaml


@pytest.fixture
def small_fs(tmp_path):
    """``mount(size)`` -> a fresh tmpfs folder of ``size`` bytes; all are unmounted afterwards."""
    mounted = []

    def mount(size: int, name: str = "fs"):
        folder = tmp_path / name
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_checkpoint_that_fills_the_disk_raises_the_os_error_naming_it(small_fs):
    fs = small_fs(256 * 1024)
    save_checkpoint({"a": torch.zeros(10)}, fs / "x.pth")
    with pytest.raises(OSError) as e:  # torch.save's own error is "RuntimeError: [enforce fail ...] unexpected pos"
        save_checkpoint({"a": torch.zeros(1_000_000)}, fs / "x.pth")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(fs / "x.pth")
    assert os.listdir(fs) == ["x.pth"] and torch.load(fs / "x.pth")["a"].shape == (10,)


@pytest.mark.slow
def test_training_on_a_full_disk_stops_with_one_line(small_fs, tmp_path, run_cli):
    ann, images = make_coco(tmp_path / "data", [(90, 120)] * 2)
    cfg = write_yaml(tmp_path / "tiny.yaml", tiny_config_dict(epochs=1, checkpoint_interval=1))
    out = small_fs(1024 * 1024)
    argv = ["train", "--config", str(cfg), "--train-ann", str(ann), "--train-images", str(images)]
    rc, errors = run_cli(argv + ["--output-dir", str(out)])
    assert rc == 2 and len(errors) == 1, errors
    assert errors[0].endswith("No space left on device") and str(out) in errors[0]
    assert not [p for p in out.rglob("*.tmp")]


@pytest.fixture
def coco(tmp_path, tiny_weights):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    paths = write_three_formats(tmp_path / "d", images, [[(0, 10, 10, 60, 60)], [(1, 5, 5, 100, 100)]], ["cat", "dog"])
    return paths["coco"]


@pytest.mark.slow
def test_every_writer_on_a_full_disk_prints_one_line_naming_the_path(small_fs, coco, tiny_weights, run_cli):
    fs = small_fs(16 * 1024)
    commands = {
        "m.onnx": ["export", "--weights", tiny_weights, "--output"],
        "report": ["eval", "--weights", tiny_weights, "--data", str(coco), "--report"],
        "voc": ["convert-data", str(coco), "--to", "voc"],
        "vis": ["predict", str(coco.parent), "--weights", tiny_weights, "--save-vis"],
        "show": ["show-data", "--data", str(coco), "--output"],
    }
    for name, argv in commands.items():
        rc, errors = run_cli(argv + [str(fs / name)])
        assert rc == 2 and len(errors) == 1 and errors[0].endswith(": No space left on device"), (name, errors)
        assert errors[0].startswith(str(fs / name)), errors  # the output, not an input (convert-data's copy)
        for path in fs.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_save_thresholds_on_a_full_disk_keeps_the_checkpoint_and_the_metrics(small_fs, tmp_path, run_cli):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    objects = [[(0, 0, 0, 128, 128)], [(1, 0, 0, 128, 128)]]  # as the model's boxes: thresholds are chosen
    coco = write_three_formats(tmp_path / "d", images, objects, ["cat", "dog"])["coco"]
    weights = save_whole_image_checkpoint(tmp_path / "m.pth", ["cat", "dog"], test_scale=(64, 48))
    fs = small_fs(os.path.getsize(weights) + 64 * 1024)  # room for the checkpoint, not for its replacement
    shutil.copy(weights, fs / "m.pth")
    before = (fs / "m.pth").read_bytes()
    out = tmp_path / "metrics.json"
    argv = ["eval", "--weights", str(fs / "m.pth"), "--data", str(coco), "--save-thresholds", "--output", str(out)]
    rc, errors = run_cli(argv)
    assert rc == 2 and errors == [f"{fs / 'm.pth'}: No space left on device"]
    assert (fs / "m.pth").read_bytes() == before and os.listdir(fs) == ["m.pth"]
    assert "bbox_mAP" in json.loads(out.read_text())  # written before the checkpoint was touched


def test_save_thresholds_into_a_read_only_folder_is_refused_before_evaluating(
    small_fs, coco, tiny_weights, run_cli, tmp_path
):
    fs = small_fs(os.path.getsize(tiny_weights) * 3)
    shutil.copy(tiny_weights, fs / "m.pth")
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    out = tmp_path / "metrics.json"
    rc, errors = run_cli(
        ["eval", "--weights", str(fs / "m.pth"), "--data", str(coco), "--save-thresholds", "--output", str(out)]
    )
    assert rc == 2 and "cannot store score thresholds in" in errors[0] and "Read-only file system" in errors[0]
    assert not out.exists()
