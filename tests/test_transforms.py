"""Training pipelines: sizes, box bookkeeping, flip, crop and determinism (MMDetection's rules)."""

import numpy as np
import pytest

from sparse_rcnn.config import ConfigError
from sparse_rcnn.data.resize import rescale_size
from sparse_rcnn.data.transforms import RandomCrop, RandomFlip, build_train_transform

MS = tuple(range(480, 801, 32))
BOXES = np.array([[3.25, 4.5, 20.75, 30.1], [50.5, 10.0, 72.0, 46.0], [0.3, 0.7, 70.9, 44.2]], dtype=np.float32)
LABELS = np.array([0, 1, 2], dtype=np.int64)


def pattern(h: int, w: int) -> np.ndarray:
    return (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)


def coordinate_image(h: int, w: int) -> np.ndarray:
    """Pixel (y, x) encodes x and y, so a crop's offset can be read back from its first pixel."""
    y, x = np.mgrid[:h, :w]
    return np.stack([x % 256, y % 256, (x // 256) * 16 + y // 256], axis=-1).astype(np.uint8)


def assert_valid(image, boxes, labels):
    h, w = image.shape[:2]
    assert boxes.dtype == np.float32 and labels.dtype == np.int64 and len(boxes) == len(labels)
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes[:, [0, 1]] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()


# Recorded with MMDetection 3.3 (oracle venv): Resize(scale, keep_ratio=True) on pattern(h, w) and BOXES.
MMDET_RESIZE = [
    (
        (1333, 800),
        (71, 45),
        (800, 1262),
        376695281,
        [
            [57.76761, 80.0, 368.82397, 535.11115],
            [897.61975, 177.77779, 1262.0, 800.0],
            [5.3323946, 12.444445, 1260.2227, 785.77783],
        ],
    ),
    (
        (1333, 512),
        (71, 45),
        (512, 808),
        154355720,
        [
            [36.985916, 51.2, 236.14084, 342.47113],
            [574.7042, 113.77778, 808.0, 512.0],
            [3.4140847, 7.9644446, 806.862, 502.8978],
        ],
    ),
    (
        (1333, 800),
        (3000, 601),
        (267, 1333),
        133327007,
        [
            [1.4440833, 1.999168, 9.219917, 13.372212],
            [22.438833, 4.4425955, 31.992, 20.43594],
            [0.1333, 0.3109817, 31.503235, 19.636272],
        ],
    ),
]


@pytest.mark.parametrize("scale, wh, hw_out, pixel_sum, boxes", MMDET_RESIZE)
def test_1x_resize_matches_mmdet(scale, wh, hw_out, pixel_sum, boxes):
    w, h = wh
    t = build_train_transform(pipeline="1x", train_scale=scale, flip_prob=0.0)
    image, out, labels, factor = t(pattern(h, w), BOXES, LABELS, np.random.default_rng(0))
    assert image.shape[:2] == hw_out and (image.shape[1], image.shape[0]) == rescale_size(w, h, scale)
    assert int(image.astype(np.int64).sum()) == pixel_sum  # OpenCV bilinear, bit for bit
    np.testing.assert_array_equal(out, np.array(boxes, dtype=np.float32))  # float32 scale, then clip
    assert factor == (hw_out[1] / w, hw_out[0] / h)
    assert labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("pipeline", ["multiscale", "crop"])
def test_random_sizes_obey_the_rules(pipeline):
    t = build_train_transform(pipeline=pipeline)
    shorts = set()
    for seed, (h, w) in enumerate([(45, 71), (71, 45), (60, 60), (20, 200)] * 5):
        image, boxes, labels, _ = t(
            pattern(h, w), BOXES * [w / 71, h / 45, w / 71, h / 45], LABELS, np.random.default_rng(seed)
        )
        short, long = min(image.shape[:2]), max(image.shape[:2])
        assert long <= 1333
        assert short in MS or long == 1333, (short, long)
        shorts.add(short)
        assert_valid(image, boxes, labels)
    assert len(shorts) >= 4  # several scales were drawn


def test_flip_mirrors_image_and_boxes():
    h, w = 45, 71
    plain = build_train_transform(pipeline="1x", train_scale=(1333, 800), flip_prob=0.0)
    flip = build_train_transform(pipeline="1x", train_scale=(1333, 800), flip_prob=1.0)
    img0, b0, _, _ = plain(pattern(h, w), BOXES, LABELS, np.random.default_rng(0))
    img1, b1, _, _ = flip(pattern(h, w), BOXES.copy(), LABELS, np.random.default_rng(0))
    W = img0.shape[1]
    np.testing.assert_array_equal(img1, img0[:, ::-1])
    np.testing.assert_array_equal(b1[:, [0, 2]], W - b0[:, [2, 0]])
    np.testing.assert_array_equal(b1[:, [1, 3]], b0[:, [1, 3]])
    flips = [
        RandomFlip(0.5)((img0, b0, LABELS, (1.0, 1.0)), np.random.default_rng(s))[1][0, 0] != b0[0, 0]
        for s in range(40)
    ]
    assert 10 < sum(flips) < 30


def test_random_crop_follows_the_offset_and_drops_empty_boxes():
    h, w = 700, 900
    image = coordinate_image(h, w)
    boxes = np.array([[10, 10, 60, 60], [400, 300, 500, 420], [850, 650, 900, 700], [0, 0, 900, 700]], dtype=np.float32)
    labels = np.arange(4, dtype=np.int64)
    dropped = 0
    for seed in range(30):
        img, out, lab, _ = RandomCrop((384, 600))((image, boxes, labels, (1.0, 1.0)), np.random.default_rng(seed))
        ch, cw = img.shape[:2]
        assert 384 <= ch <= 600 and 384 <= cw <= 600
        x0 = int(img[0, 0, 0]) + 256 * (int(img[0, 0, 2]) // 16)
        y0 = int(img[0, 0, 1]) + 256 * (int(img[0, 0, 2]) % 16)
        np.testing.assert_array_equal(img, image[y0 : y0 + ch, x0 : x0 + cw])
        shifted = boxes - [x0, y0, x0, y0]
        clipped = np.stack(
            [
                shifted[:, 0].clip(0, cw),
                shifted[:, 1].clip(0, ch),
                shifted[:, 2].clip(0, cw),
                shifted[:, 3].clip(0, ch),
            ],
            1,
        )
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        np.testing.assert_array_equal(out, clipped[keep])
        np.testing.assert_array_equal(lab, labels[keep])
        dropped += int((~keep).sum())
    assert dropped > 0  # some draws really left boxes outside the crop


def test_crop_is_capped_by_small_images():
    img, _, _, _ = RandomCrop((384, 600))((pattern(100, 500), BOXES, LABELS, (1.0, 1.0)), np.random.default_rng(0))
    assert img.shape[0] == 100 and 384 <= img.shape[1] <= 500


@pytest.mark.parametrize("pipeline", ["1x", "multiscale", "crop"])
def test_same_seed_same_output(pipeline):
    t = build_train_transform(pipeline=pipeline)
    runs = [t(pattern(45, 71), BOXES, LABELS, np.random.default_rng([7, 1, 3])) for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    others = [t(pattern(45, 71), BOXES, LABELS, np.random.default_rng([7, e, 3]))[1] for e in range(2, 8)]
    assert any(o.shape != runs[0][1].shape or not np.array_equal(o, runs[0][1]) for o in others)


def test_unknown_pipeline_is_a_config_error():
    with pytest.raises(ConfigError, match="choose one of 1x, multiscale, crop"):
        build_train_transform(pipeline="mosaic")
