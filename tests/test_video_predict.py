"""predict on videos: frame records equal predict on the frames as PNG, JSON Lines that survive a
kill, frame skipping and times, and the Python generator."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")

from sparse_rcnn.data import ClipSpec, render_clip  # noqa: E402
from sparse_rcnn.models import load_model  # noqa: E402
from sparse_rcnn.video import make_clip, predict_video  # noqa: E402

SPEC = ClipSpec(num_frames=12, width=72, height=56, num_objects=3, min_size=10, max_size=20, seed=11)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    make_clip(root / "clip.mkv", SPEC, gt=root / "gt.txt", lossless=True)
    return root / "clip.mkv"


def test_frames_of_a_lossless_clip_decode_to_the_pixels_written(clip):
    from sparse_rcnn.video import FrameReader

    frames = list(FrameReader(clip))
    assert [f.index for f in frames] == list(range(SPEC.num_frames))
    for f, (expected, _) in zip(frames, render_clip(SPEC)):
        assert np.array_equal(f.image, expected)
    assert [f.time for f in frames] == pytest.approx([i / SPEC.fps for i in range(SPEC.num_frames)])


@pytest.mark.parametrize("pad", ["bucket", "largest"])  # each frame alone; batches of 3 as one forward
def test_records_equal_predict_on_the_frames_as_png(clip, tiny_weights, tmp_path, run_cli, pad):
    pngs = []
    for i, (frame, _) in enumerate(render_clip(SPEC)):
        pngs.append(str(tmp_path / f"f{i:03d}.png"))
        Image.fromarray(frame).save(pngs[-1])
    flags = ["--weights", tiny_weights, "--batch-size", "3", "--pad", pad]
    rc, _ = run_cli(["predict", *pngs, *flags, "--output", str(tmp_path / "images.json")])
    assert rc == 0
    images = json.loads((tmp_path / "images.json").read_text())
    out = tmp_path / "video.jsonl"
    rc, _ = run_cli(["predict", str(clip), *flags, "--output", str(out)])
    assert rc == 0
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(SPEC.num_frames))
    assert all(f["detections"] for f in frames)
    for f, image in zip(frames, images):
        assert (f["width"], f["height"]) == (image["width"], image["height"])
        assert f["detections"] == image["detections"]  # same fields, bit-identical numbers


def test_every_max_fps_start_end_pick_frames_by_number_and_time(clip, tiny_weights, tmp_path, run_cli):
    def frames(*flags):
        out = tmp_path / "o.jsonl"
        rc, _ = run_cli(["predict", str(clip), "--weights", tiny_weights, "--output", str(out), *flags])
        assert rc == 0
        return [(r["frame"], r["time"]) for r in map(json.loads, out.read_text().splitlines())]

    assert [f for f, _ in frames("--every", "5")] == [0, 5, 10]
    assert [f for f, _ in frames("--max-fps", "10")] == [0, 3, 5, 8, 10]  # 25 fps: one frame per 0.1 s slot
    picked = frames("--start", "0.2", "--end", "0.36", "--every", "2")
    assert picked == [(5, 0.2), (7, 0.28)]


def test_the_python_generator_gives_the_command_records(clip, tiny_weights, tmp_path, run_cli):
    out = tmp_path / "o.jsonl"
    rc, _ = run_cli(["predict", str(clip), "--weights", tiny_weights, "--output", str(out), "--score-thr", "0.05"])
    assert rc == 0
    model = load_model(weights=tiny_weights)
    records = list(predict_video(model, clip, score_thr=0.05))
    assert records == [json.loads(line) for line in out.read_text().splitlines()]


def test_stdout_and_a_stream_url(clip, tiny_weights, http_dir, run_cli, capsys):
    folder, base = http_dir
    (folder / "clip.mkv").write_bytes(clip.read_bytes())
    rc, _ = run_cli(["predict", f"{base}/clip.mkv", "--weights", tiny_weights, "--every", "4"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 4, 8]


def _long_clip(path):
    spec = ClipSpec(num_frames=1500, width=64, height=48, num_objects=2, min_size=10, max_size=16, seed=2)
    make_clip(path, spec)
    return spec.num_frames


def _run_until_lines(argv, out, n):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= n:
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {n} lines written: {proc.communicate()[1][-2000:]}")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_or_killed_run_leaves_valid_json_lines(tmp_path, tiny_weights, how):
    total = _long_clip(tmp_path / "long.mp4")
    out = tmp_path / "o.jsonl"
    argv = [sys.executable, "-m", "sparse_rcnn.cli", "predict", str(tmp_path / "long.mp4"), "--weights", tiny_weights]
    proc = _run_until_lines([*argv, "--output", str(out)], out, 3)
    os.kill(proc.pid, getattr(signal, how))
    _, err = proc.communicate(timeout=120)
    text = out.read_text()
    complete = text[: text.rfind("\n") + 1].splitlines()
    frames = [json.loads(line)["frame"] for line in complete]  # every finished line parses
    assert frames == list(range(len(frames))) and 3 <= len(frames) < total
    if how == "SIGTERM":
        assert proc.returncode == 128 + signal.SIGTERM
        assert text.endswith("\n")  # stopped after a whole frame
        assert f"SIGTERM: stopped after {len(frames)} frames" in err
    else:
        assert proc.returncode == -signal.SIGKILL
