"""The one inference loop: batches hold one padded shape, so an answer does not depend on its
neighbours; input order, unreadable inputs and torchrun shards."""

import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn.common import Processes
from sparse_rcnn.inference import ImageFiles, ImageStream, Item, group_batches, iter_predictions
from sparse_rcnn.models import build_model
from tiny import tiny_config

SIZES = [(90, 120), (90, 120), (150, 70), (90, 120), (64, 64), (150, 70), (90, 120)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_config().model, ["a", "b", "c"]).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate(SIZES):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    (folder / "broken.png").write_bytes(b"not a png")
    return paths[:3] + [str(folder / "broken.png")] + paths[3:]


def _item(i, h, w, error=None):
    return Item(i, i, error=error) if error else Item(i, i, resized=torch.zeros(3, h, w), factor=(1.0, 1.0))


def test_batches_hold_one_padded_shape_in_input_order():
    items = [_item(0, 90, 120), _item(1, 96, 128), _item(2, 150, 70), _item(3, 0, 0, "bad"), _item(4, 90, 120)]
    batches = list(group_batches(items, 4, pad="bucket", size_divisor=32))
    # 90x120 and 96x128 both pad to 96x128; 150x70 pads to 160x96; an unreadable item rides along
    assert [[it.index for it in b] for b in batches] == [[0, 1], [2, 3], [4]]
    largest = list(group_batches(items, 2, pad="largest", size_divisor=32))
    assert [[it.index for it in b] for b in largest] == [[0, 1], [2, 3], [4]]
    assert [len(b) for b in group_batches(items[:2] * 3, 4, pad="bucket", size_divisor=32)] == [4, 2]


def _run(model, files, **kw):
    return list(iter_predictions(model, ImageFiles(files, model.test_scale), **kw))


def test_an_answer_does_not_depend_on_the_batch(model, files):
    alone = _run(model, files, batch_size=1)
    batched = _run(model, files, batch_size=4)
    assert [p.key for p in batched] == files and [p.index for p in batched] == list(range(len(files)))
    assert batched[3].error is not None and "broken.png" in batched[3].error
    for a, b in zip(alone, batched):  # bit-identical
        if a.error is None:
            assert all(torch.equal(a.detections[k], b.detections[k]) for k in ("boxes", "scores", "labels"))
    # padded to the largest image of each batch instead, a small image's answer changes
    padded = _run(model, files, batch_size=4, pad="largest")
    assert any(
        not torch.allclose(a.detections["scores"], b.detections["scores"], atol=1e-4)
        for a, b in zip(alone, padded)
        if a.error is None
    )


def test_a_stream_and_a_shard(model, files):
    frames = [(f"frame{i}", np.asarray(Image.open(p))) for i, p in enumerate(files) if "broken" not in p]
    streamed = list(iter_predictions(model, ImageStream(frames, model.test_scale), batch_size=3))
    assert [p.key for p in streamed] == [key for key, _ in frames]
    share = _run(model, files, processes=Processes(rank=1, world_size=3))
    assert [p.index for p in share] == list(range(1, len(files), 3))


def test_stop_ends_the_run_between_batches(model, files):
    seen = []

    def stop():
        if len(seen) >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        for pred in iter_predictions(model, ImageFiles(files, model.test_scale), batch_size=2, stop=stop):
            seen.append(pred)
    assert len(seen) == 2


def test_independent_answers_are_bit_identical_to_the_image_alone(model):
    """A shared forward rounds differently from batch 1 (oneDNN's batch-size-dependent kernels on
    small maps); the independent mode runs each image alone."""
    torch.manual_seed(3)
    images = [torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8) for _ in range(4)]
    factors = [(1.0, 1.0)] * 4
    with torch.no_grad():
        alone = [model.detect_resized([img], factors[:1])[0] for img in images]
        together = model.detect_resized(images, factors, independent=True)
        shared = model.detect_resized(images, factors)  # one backbone pass for the batch
        mixed = model.detect_resized([images[0], images[1][:, :40, :70]], factors[:2], independent=True)
        small = model.detect_resized([images[1][:, :40, :70]], factors[:1])[0]
    for a, b in zip(alone, together):
        assert all(torch.equal(a[k], b[k]) for k in ("boxes", "scores", "labels"))
    for a, b in zip(alone, shared):  # MMDetection's shared batch: the same up to float rounding
        torch.testing.assert_close(a["scores"], b["scores"], rtol=1e-4, atol=1e-5)
    assert all(torch.equal(x[k], y[k]) for x, y in ((mixed[0], alone[0]), (mixed[1], small)) for k in x)
