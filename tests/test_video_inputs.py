"""Bad video inputs end with one line each and keep what was written; mixed inputs; variable rate."""

import json
import wave
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from sparse_rcnn.data import ClipSpec  # noqa: E402
from sparse_rcnn.video import make_clip  # noqa: E402

SPEC = ClipSpec(num_frames=40, width=64, height=48, num_objects=2, min_size=10, max_size=16, seed=5)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_clip(root / "good.mp4", SPEC)
    data = (root / "good.mp4").read_bytes()
    (root / "garbage.mp4").write_bytes(b"\x00not a video at all" * 100)
    with wave.open(str(root / "sound.mkv"), "wb") as w:  # a WAV file named .mkv: a container without video
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\x00\x00" * 800)
    c = av.open(str(root / "empty.avi"), "w")  # a video stream that holds no frame
    s = c.add_stream("mpeg4", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    c.start_encoding()  # the header, and no frame
    c.close()
    make_clip(root / "whole.mkv", SPEC, lossless=True)
    whole = (root / "whole.mkv").read_bytes()
    (root / "cut.mkv").write_bytes(whole[: len(whole) // 2])  # the stream drops half-way
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])  # mp4 index at the end: unreadable
    return root


@pytest.mark.parametrize(
    "name, message",
    [
        ("garbage.mp4", "cannot open as a video"),
        ("sound.mkv", "holds no video stream"),
        ("empty.avi", "holds no frames"),
        ("missing.mp4", "no such file"),
        ("cut.mp4", "cannot open as a video"),
    ],
)
def test_a_bad_video_is_one_line(videos, tiny_weights, run_cli, name, message, tmp_path):
    out = tmp_path / "o.jsonl"
    rc, errors = run_cli(["predict", str(videos / name), "--weights", tiny_weights, "--output", str(out)])
    assert (rc, len(errors)) == (2 if name != "empty.avi" else 1, 1), errors
    assert message in errors[0] and name in errors[0]


def test_a_stream_that_drops_keeps_every_frame_before(videos, tiny_weights, run_cli, tmp_path):
    out = tmp_path / "o.jsonl"
    rc, errors = run_cli(["predict", str(videos / "cut.mkv"), "--weights", tiny_weights, "--output", str(out)])
    frames = [json.loads(line)["frame"] for line in out.read_text().splitlines()]
    assert 0 < len(frames) < SPEC.num_frames and frames == list(range(len(frames)))
    # FFmpeg may end a cut file quietly (then we warn that it is short) or with an error (one line)
    assert rc in (0, 1) and len(errors) == (rc == 1)


def test_several_videos_and_images_each_to_their_place(videos, tiny_weights, run_cli, tmp_path):
    from PIL import Image

    image = tmp_path / "still.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(image)
    args = ["predict", str(videos / "good.mp4"), str(videos / "whole.mkv"), str(image), "--weights", tiny_weights]
    rc, errors = run_cli(args)
    assert rc == 2 and "--output-dir" in errors[0]
    out_dir, vis = tmp_path / "frames", tmp_path / "vis"
    outputs = ["--output-dir", str(out_dir), "--output", str(tmp_path / "images.json"), "--save-vis", str(vis)]
    rc, errors = run_cli([*args, *outputs, "--every", "10"])
    assert rc == 0, errors
    assert sorted(p.name for p in out_dir.iterdir()) == ["good.jsonl", "whole.jsonl"]
    assert len((out_dir / "good.jsonl").read_text().splitlines()) == 4
    assert [r["image"] for r in json.loads((tmp_path / "images.json").read_text())] == [str(image)]
    assert sorted(p.name for p in vis.iterdir()) == ["good.mp4", "still.png", "whole.mp4"]
    assert sum(1 for _ in av.open(str(vis / "whole.mp4")).decode(video=0)) == 4
    rc, errors = run_cli(["predict", str(videos / "good.mp4"), str(videos / "garbage.mp4"), "--weights", tiny_weights,
                          "--output-dir", str(out_dir)])  # fmt: skip
    assert rc == 1 and len(errors) == 1 and "garbage.mp4" in errors[0]


def test_video_flags_without_a_video_and_mot_without_track_are_refused(videos, tiny_weights, run_cli, tmp_path):
    from PIL import Image

    image = tmp_path / "still.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(image)
    rc, errors = run_cli(["predict", str(image), "--weights", tiny_weights, "--track"])
    assert rc == 2 and "--track applies to videos" in errors[0]
    rc, errors = run_cli(["predict", str(videos / "good.mp4"), "--weights", tiny_weights, "--format", "mot"])
    assert rc == 2 and "--track" in errors[0]
    for flag, value, message in (
        ("--track-nms", "1.5", "--track-nms must be an IoU"),
        ("--track-high-thr", "0", "--track-high-thr must be above 0"),
    ):
        rc, errors = run_cli(["predict", str(videos / "good.mp4"), "--weights", tiny_weights, "--track", flag, value])
        assert rc == 2 and len(errors) == 1 and errors[0].startswith(message), errors


def test_a_variable_frame_rate_keeps_the_frames_own_times(tmp_path, tiny_weights, run_cli, caplog):
    path = tmp_path / "vfr.mkv"
    c = av.open(str(path), "w")
    s = c.add_stream("ffv1", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "bgr0"
    s.codec_context.time_base = Fraction(1, 1000)
    times_ms = [0, 40, 80, 200, 240, 500]
    for t in times_ms:
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), t % 255, np.uint8), format="rgb24")
        frame.pts, frame.time_base = t, Fraction(1, 1000)
        for packet in s.encode(frame):
            c.mux(packet)
    for packet in s.encode():
        c.mux(packet)
    c.close()
    out = tmp_path / "o.jsonl"
    rc, _ = run_cli(["predict", str(path), "--weights", tiny_weights, "--output", str(out)])
    assert rc == 0
    assert [json.loads(line)["time"] for line in out.read_text().splitlines()] == [t / 1000 for t in times_ms]
    assert any("variable frame rate" in r.getMessage() for r in caplog.records)
