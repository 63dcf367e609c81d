"""The video pipeline's fast paths give what the plain ones gave: decoded pixels equal PyAV's own
``to_ndarray``, drawn frames equal ``visualize.draw_detections``' pictures, and the annotated video
written in a background thread holds every frame, also when the run stops early or fails."""

from collections import deque

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

av = pytest.importorskip("av")

from sparse_rcnn.data import ClipSpec, render_clip  # noqa: E402
from sparse_rcnn.video import FrameDrawer, FrameReader, VideoWriter, make_clip  # noqa: E402
from sparse_rcnn.visualize import class_color, draw_detections  # noqa: E402

NAMES = ["circle", "square", "triangle"]


@pytest.mark.parametrize(
    "name, size, lossless", [("a.mp4", (64, 48), False), ("odd.mp4", (63, 47), False), ("rgb.mp4", (64, 48), True)]
)
def test_decoded_frames_equal_pyav_to_ndarray(tmp_path, name, size, lossless):
    spec = ClipSpec(num_frames=6, width=size[0], height=size[1], num_objects=2, min_size=10, max_size=16, seed=3)
    make_clip(tmp_path / name, spec, lossless=lossless)
    with av.open(str(tmp_path / name)) as container:
        expected = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    frames = [f.image for f in FrameReader(tmp_path / name)]
    assert len(frames) == len(expected) == spec.num_frames
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected))


def _old_draw(drawer_state, image, det, names, short=False, zoom=1, trail=15):
    """FrameDrawer.draw as it was: through draw_detections, then the trails on a PIL copy."""
    if zoom != 1:
        image = image.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)
        det = {**det, "boxes": torch.as_tensor(det["boxes"]) * zoom}
    labels = det["labels"].tolist()
    if "track_ids" not in det:
        return draw_detections(image, det["boxes"], labels, names, det["scores"]).permute(1, 2, 0).numpy()
    ids = det["track_ids"].tolist()
    captions = [
        f"#{t}" if short else f"#{t} {names[lab]} {float(s):.2f}" for t, lab, s in zip(ids, labels, det["scores"])
    ]
    drawn = draw_detections(image, det["boxes"], ids, names, captions=captions)
    canvas = Image.fromarray(drawn.permute(1, 2, 0).contiguous().numpy())
    pen = ImageDraw.Draw(canvas)
    for t, box in zip(ids, det["boxes"].tolist()):
        centres = drawer_state.setdefault(t, deque(maxlen=trail))
        centres.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        if len(centres) > 1:
            pen.line(list(centres), fill=class_color(t), width=2)
    return np.asarray(canvas)


def _detections(g, k, track, width, height):
    xy = torch.rand(k, 2, generator=g) * torch.tensor([width * 0.8, height * 0.8])
    wh = 4 + torch.rand(k, 2, generator=g) * torch.tensor([width * 0.3, height * 0.3])
    det = {
        "boxes": torch.cat([xy, xy + wh], 1),
        "scores": torch.rand(k, generator=g),
        "labels": torch.randint(0, 3, (k,)),
    }
    if track:
        det["track_ids"] = torch.randperm(9, generator=g)[:k] + 1
    return det


@pytest.mark.parametrize("track, short, zoom", [(False, False, 1), (True, False, 1), (True, True, 2), (True, False, 3)])
def test_frame_drawer_draws_the_pictures_of_draw_detections(track, short, zoom):
    g = torch.Generator().manual_seed(zoom + 2 * short + 4 * track)
    frames = [
        torch.from_numpy(f).permute(2, 0, 1) for f, _ in render_clip(ClipSpec(num_frames=5, width=160, height=120))
    ]
    drawer, state = FrameDrawer(NAMES, short=short, zoom=zoom), {}
    for i, image in enumerate(frames):
        det = _detections(g, 0 if i == 2 else 6, track, 160, 120)  # one frame without a detection
        got = drawer.draw(image, det)
        assert got.shape == (120 * zoom, 160 * zoom, 3) and got.dtype == np.uint8
        assert np.array_equal(got, _old_draw(state, image, det, NAMES, short=short, zoom=zoom))


def _frames(n, width=64, height=48):
    spec = ClipSpec(num_frames=n, width=width, height=height, num_objects=2, min_size=10, max_size=16, seed=4)
    return [torch.from_numpy(f.copy()).permute(2, 0, 1) for f, _ in render_clip(spec)]


def _det(k=2):
    boxes = torch.tensor([[4.0, 4.0, 30.0, 20.0], [10.0, 12.0, 40.0, 44.0]])[:k]
    return {"boxes": boxes, "scores": torch.tensor([0.9, 0.4])[:k], "labels": torch.tensor([0, 2])[:k]}


def test_the_annotated_video_holds_every_frame_drawn_in_order(tmp_path):
    from sparse_rcnn.video import AnnotatedVideo

    frames = _frames(10)
    with AnnotatedVideo(VideoWriter(tmp_path / "a.mkv", 64, 48, 25, lossless=True), FrameDrawer(NAMES), depth=2) as a:
        for f in frames:
            a.put(f, _det())
    assert a.frames == 10 and not list(tmp_path.glob(".*partial*"))
    expected = [FrameDrawer(NAMES).draw(f, _det()) for f in frames]
    assert all(np.array_equal(x.image, y) for x, y in zip(FrameReader(tmp_path / "a.mkv"), expected))


class _Broken(FrameDrawer):
    def draw(self, image, det):
        if len(det["boxes"]) == 1:
            raise OSError(28, "No space left on device")
        return super().draw(image, det)


def test_an_error_of_the_thread_is_raised_in_the_callers_and_the_file_dropped(tmp_path):
    from sparse_rcnn.video import AnnotatedVideo

    a = AnnotatedVideo(VideoWriter(tmp_path / "a.mp4", 64, 48, 25), _Broken(NAMES), depth=1)
    with pytest.raises(OSError, match="No space"):
        for i, f in enumerate(_frames(40)):  # the thread fails at frame 3; a later put or close says so
            a.put(f, _det(1 if i == 3 else 2))
        a.close()
    a.close()  # idempotent: raised once
    a.abort()
    with pytest.raises(RuntimeError, match="closed"):
        a.put(_frames(1)[0], _det())
    assert not (tmp_path / "a.mp4").exists() and not list(tmp_path.iterdir())


def test_abort_drops_the_file_and_ends_the_thread(tmp_path):
    from sparse_rcnn.video import AnnotatedVideo

    a = AnnotatedVideo(VideoWriter(tmp_path / "a.mp4", 64, 48, 25), FrameDrawer(NAMES))
    for f in _frames(3):
        a.put(f, _det())
    a.abort()
    assert not a._thread.is_alive() and not list(tmp_path.iterdir())
    idle = AnnotatedVideo(VideoWriter(tmp_path / "b.mp4", 64, 48, 25), FrameDrawer(NAMES))
    idle.abort()  # a thread waiting for its first frame ends too
    assert not idle._thread.is_alive() and not list(tmp_path.iterdir())


def test_frames_are_resized_in_the_decoding_thread_and_the_stream_takes_them_as_they_are(tmp_path):
    import threading

    from sparse_rcnn.inference import ImageStream, prepare

    spec = ClipSpec(num_frames=5, width=64, height=48, num_objects=2, min_size=10, max_size=16, seed=6)
    make_clip(tmp_path / "c.mkv", spec, lossless=True)
    threads = set()

    def transform(image):
        threads.add(threading.current_thread())
        return prepare(0, None, image, (40, 24))

    frames = list(FrameReader(tmp_path / "c.mkv", transform=transform))
    assert threads and threading.main_thread() not in threads
    ready = list(ImageStream(((f.index, f.data) for f in frames), (40, 24)))
    here = list(ImageStream(((f.index, f.image) for f in frames), (40, 24)))
    assert [(i.index, i.key) for i in ready] == [(i.index, i.key) for i in here] == [(k, k) for k in range(5)]
    for a, b in zip(ready, here):
        assert a.resized.shape == (3, 24, 32) and torch.equal(a.resized, b.resized) and a.factor == b.factor
        assert torch.equal(a.original, b.original)
