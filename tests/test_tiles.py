"""Sliced inference (``inference.TiledDetector``) and test-time augmentation (``inference.TTADetector``):
tiles give the model's answer on each crop, shifted; a box cut by a tile border comes out once;
the identity augmentation is plain prediction; mirrored boxes map back exactly; both go through
the one inference loop unchanged."""

import numpy as np
import pytest
import torch

from sparse_rcnn.inference import (
    ImageStream,
    TiledDetector,
    TTADetector,
    iter_predictions,
    merge_detections,
    predict_tiled,
    predict_tta,
    tile_windows,
)
from sparse_rcnn.inference.tta import unflip
from sparse_rcnn.models import build_model
from tiny import tiny_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_config().model, ["a", "b", "c"]).eval()


def _image(w: int, h: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, h, w), dtype=np.uint8))


class BrightBox:
    """A detector that finds the bright (> 128) pixels of its input: one box around them, label 0,
    score 0.9; test scale (120, 100) so 120x100 tiles are not resized."""

    class_names = ["a"]
    test_scale = (120, 100)
    size_divisor = 1

    def detect_resized(self, images, scale_factors, *, independent=False):
        out = []
        for image, (sx, sy) in zip(images, scale_factors):
            ys, xs = torch.nonzero(image[0] > 128, as_tuple=True)
            if len(xs) == 0:
                out.append({"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0).long()})
                continue
            box = torch.tensor([[xs.min() / sx, ys.min() / sy, (xs.max() + 1) / sx, (ys.max() + 1) / sy]]).float()
            out.append({"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])})
        return out


def test_windows_follow_sahi_slicing():
    # step 100 - int(0.2 * 100) = 80; the last tile moves back to end at the edge (SAHI get_slice_bboxes)
    assert tile_windows(250, 100, (100, 100), 0.2) == [(0, 0, 100, 100), (80, 0, 180, 100), (150, 0, 250, 100)]
    assert tile_windows(60, 40, (100, 100), 0.2) == [(0, 0, 60, 40)]
    rows = tile_windows(200, 190, (100, 100), 0.5)
    assert {w[1] for w in rows} == {0, 50, 90} and len(rows) == 9
    with pytest.raises(ValueError, match="`overlap`"):
        tile_windows(10, 10, (5, 5), 1.0)


def test_tiles_give_the_model_answer_on_each_crop(model):
    image = _image(200, 130)
    tiled = TiledDetector(
        model, (120, 130), with_full=False, cut="keep", iou_thr=1.0, max_detections=10_000, batch_size=1
    )
    got = tiled.detect_resized([image], [(1.0, 1.0)])[0]
    expected = []
    for x1, y1, x2, y2 in tile_windows(200, 130, (120, 130), 0.2):
        det = model.predict(image[:, y1:y2, x1:x2].clone())
        det["boxes"] = det["boxes"] + torch.tensor([x1, y1, x1, y1])
        expected.append(det)
    boxes = torch.cat([d["boxes"] for d in expected])
    scores = torch.cat([d["scores"] for d in expected])
    labels = torch.cat([d["labels"] for d in expected])
    order = torch.argsort(scores, descending=True, stable=True)
    assert len(got["scores"]) == len(order) == 2 * 8  # two tiles, 8 proposals each, nothing merged
    assert torch.equal(got["labels"], labels[order])
    torch.testing.assert_close(got["scores"], scores[order], rtol=0, atol=1e-6)
    torch.testing.assert_close(got["boxes"], boxes[order], rtol=1e-5, atol=1e-4)  # float rounding


def _border_image() -> torch.Tensor:
    image = torch.zeros(3, 100, 200, dtype=torch.uint8)
    image[:, 20:60, 90:130] = 255  # across the border x = 120 of the first tile (0..120)
    return image


@pytest.mark.parametrize("cut, merge, match", [("drop", "nms", "iou"), ("keep", "nmm", "ios")])
def test_a_box_cut_by_a_tile_border_comes_out_once(cut, merge, match):
    tiled = TiledDetector(BrightBox(), (120, 100), overlap=0.5, with_full=False, cut=cut, merge=merge, match=match)
    det = tiled.detect_resized([_border_image()], [(1.0, 1.0)])[0]
    assert det["boxes"].tolist() == [[90.0, 20.0, 130.0, 60.0]]


def test_a_cut_box_kept_and_not_merged_stays_two():
    tiled = TiledDetector(
        BrightBox(), (120, 100), overlap=0.5, with_full=False, cut="keep", iou_thr=0.8, max_detections=10
    )
    det = tiled.detect_resized([_border_image()], [(1.0, 1.0)])[0]
    assert sorted(det["boxes"].tolist()) == [[90.0, 20.0, 120.0, 60.0], [90.0, 20.0, 130.0, 60.0]]


def test_max_detections_default_is_the_model_count_and_can_be_raised(model):
    image = _image(300, 130, seed=1)
    assert len(predict_tiled(model, image, (100, 130), iou_thr=1.0)["scores"]) == 8
    assert len(predict_tiled(model, image, (100, 130), iou_thr=1.0, max_detections=100)["scores"]) > 8


def test_tta_identity_is_plain_prediction(model):
    image = _image(150, 110, seed=2)
    plain = model.predict(image)
    got = predict_tta(model, image, scales=(1.0,), flip=False)
    assert torch.equal(got["labels"], plain["labels"]) and got["categories"] == plain["categories"]
    torch.testing.assert_close(got["scores"], plain["scores"], rtol=0, atol=1e-6)
    torch.testing.assert_close(got["boxes"], plain["boxes"], rtol=1e-5, atol=1e-4)


def test_flip_maps_back_exactly():
    image = torch.zeros(3, 100, 200, dtype=torch.uint8)
    image[:, 10:50, 30:70] = 255  # not symmetric: the mirrored pass sees it at x 130..170
    detector = BrightBox()
    mirrored = detector.detect_resized([image.flip(-1)], [(1.0, 1.0)])[0]
    assert mirrored["boxes"].tolist() == [[130.0, 10.0, 170.0, 50.0]]
    assert (
        unflip(mirrored, 200)["boxes"].tolist() == detector.detect_resized([image], [(1.0, 1.0)])[0]["boxes"].tolist()
    )


def test_flip_on_a_symmetric_image_maps_onto_the_plain_pass(model):
    half = _image(60, 110, seed=3)
    image = torch.cat([half, half.flip(-1)], dim=2)  # left-right symmetric, 120 wide
    plain = model.predict(image)
    both = TTADetector(model, scales=(1.0,), flip=True, iou_thr=1.0, max_detections=100)
    got = both.detect_resized([image], [(1.0, 1.0)])[0]
    mirrored = unflip(plain, 120)  # the flipped input is the same image: its boxes are the plain ones, mirrored
    expected = merge_detections(
        {
            "boxes": torch.cat([plain["boxes"], mirrored["boxes"]]),
            "scores": torch.cat([plain["scores"], plain["scores"]]),
            "labels": torch.cat([plain["labels"], plain["labels"]]),
        },
        iou_thr=1.0,
    )
    torch.testing.assert_close(got["boxes"], expected["boxes"], rtol=1e-5, atol=1e-4)  # batch 2: float rounding
    assert torch.equal(got["labels"], expected["labels"])


def test_wrappers_run_in_the_inference_loop(model):
    images = [_image(220, 130, seed=4), _image(90, 70, seed=5)]
    for wrapper in (
        TiledDetector(model, (100, 100)),
        TTADetector(model),
        TiledDetector(TTADetector(model, scales=(1.0,)), (100, 100)),
    ):
        preds = list(iter_predictions(wrapper, ImageStream(enumerate(images), wrapper.test_scale), batch_size=2))
        assert [(p.width, p.height) for p in preds] == [(220, 130), (90, 70)]
        for pred, image in zip(preds, images):
            with torch.no_grad():  # as the loop
                direct = wrapper.detect_resized([image], [(1.0, 1.0)])[0]
            torch.testing.assert_close(pred.detections["boxes"], direct["boxes"], rtol=0, atol=0)


def test_bad_options_name_the_parameter(model):
    with pytest.raises(ValueError, match="`merge`"):
        TiledDetector(model, (64, 64), merge="mean")
    with pytest.raises(ValueError, match="`scales`"):
        TTADetector(model, scales=())
    with pytest.raises(ValueError, match="`detector`"):
        TTADetector(TiledDetector(model, (64, 64)))
