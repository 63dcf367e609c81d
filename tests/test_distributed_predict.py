"""torchrun predict: N processes share the images and write the same file as one process."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from train_fixtures import run, subprocess_env

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


@pytest.mark.slow
def test_two_processes_write_the_same_output_as_one(tmp_path, tiny_weights):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    # 5 images of different sizes (an odd count: the ranks get 3 and 2), and one that is not an image
    for i, (h, w) in enumerate([(40, 60), (70, 50), (64, 64), (30, 90), (55, 41)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    (folder / "img5.png").write_bytes(b"not a png")
    env = subprocess_env(OMP_NUM_THREADS="1")
    outputs = {}
    for name, launcher in [("one", []), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"])]:
        out = tmp_path / f"{name}.json"
        cmd = [
            sys.executable,
            *launcher,
            "-m",
            "sparse_rcnn.cli",
            "predict",
            str(folder),
            "--weights",
            tiny_weights,
            "--output",
            str(out),
            "--save-vis",
            str(tmp_path / f"vis-{name}"),
        ]
        proc = run(cmd, env, timeout=240)
        assert proc.returncode != 0 and "1 of 6 images failed" in proc.stderr, proc.stderr[-3000:]
        assert proc.stderr.count("1 of 6 images failed") == 1  # said once, by the process that writes
        outputs[name] = out.read_bytes()
    assert outputs["two"] == outputs["one"]
    assert outputs["one"].count(b'"image"') == 5
    for i in range(5):
        assert (tmp_path / "vis-two" / f"img{i}.png").read_bytes() == (
            tmp_path / "vis-one" / f"img{i}.png"
        ).read_bytes()
