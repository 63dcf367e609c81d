"""``TiledDetector`` against SAHI's ``get_sliced_prediction`` on the same model outputs: with SAHI's
slice coordinates and merge settings, the same boxes. Skipped without ``sahi`` (the ``tiles`` extra).

The model's boxes are clipped to each view first (``Clipped``): SAHI clips a slice's boxes to
[0, full image size] in the slice's own pixels, which differs from no clipping for boxes that leave
the slice; with boxes inside their view both read the same numbers."""

import numpy as np
import pytest
import torch

from sparse_rcnn.inference import TiledDetector
from sparse_rcnn.inference.views import detect_views
from sparse_rcnn.models import build_model
from tiny import tiny_config

sahi = pytest.importorskip("sahi")
from sahi.models.base import DetectionModel  # noqa: E402
from sahi.predict import get_sliced_prediction  # noqa: E402
from sahi.prediction import ObjectPrediction  # noqa: E402
from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list  # noqa: E402


class Clipped:
    """A detector whose boxes are clipped to the original view and non-empty."""

    def __init__(self, detector) -> None:
        self.detector, self.class_names = detector, detector.class_names
        self.test_scale, self.size_divisor = detector.test_scale, detector.size_divisor

    def detect_resized(self, images, scale_factors, *, independent=False):
        out = []
        dets = self.detector.detect_resized(images, scale_factors, independent=independent)
        for image, (sx, sy), det in zip(images, scale_factors, dets):
            w, h = image.shape[-1] / sx, image.shape[-2] / sy
            boxes = det["boxes"].clone()
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            out.append({"boxes": boxes[keep], "scores": det["scores"][keep], "labels": det["labels"][keep]})
        return out


class SahiModel(DetectionModel):
    """Our detector as a SAHI ``DetectionModel``: each slice through ``detect_views``, one at a time."""

    def load_model(self):
        pass

    def perform_inference(self, image: np.ndarray) -> None:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
        with torch.no_grad():
            self._original_predictions = detect_views(self.detector, [tensor], batch_size=1)

    def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=None, full_shape_list=None):
        det = self._original_predictions[0]
        shift = fix_shift_amount_list(shift_amount_list or [[0, 0]])[0]
        shape = fix_full_shape_list(full_shape_list)[0] if full_shape_list else None
        preds = [
            ObjectPrediction(
                bbox=box,
                category_id=int(label),
                category_name=str(label),
                score=score,
                shift_amount=shift,
                full_shape=shape,
            )
            for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())
            if score >= self.confidence_threshold
        ]
        self._object_prediction_list_per_image = [preds]


@pytest.mark.parametrize("merge, match", [("nms", "iou"), ("nmm", "ios")])
def test_same_boxes_as_sahi_sliced_prediction(merge, match):
    torch.manual_seed(0)
    detector = Clipped(build_model(tiny_config().model, ["a", "b", "c"]).eval())
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 150, 230), dtype=np.uint8))
    ours = TiledDetector(detector, (100, 90), overlap=0.25, cut="keep", merge=merge, match=match, iou_thr=0.5)
    ours.max_detections = 10_000
    with torch.no_grad():
        got = ours.detect_resized([image], [(1.0, 1.0)])[0]
    sahi_model = SahiModel(confidence_threshold=0.0, load_at_init=False)
    sahi_model.detector = detector
    result = get_sliced_prediction(
        image.permute(1, 2, 0).numpy(),
        sahi_model,
        slice_height=90,
        slice_width=100,
        overlap_height_ratio=0.25,
        overlap_width_ratio=0.25,
        perform_standard_pred=True,
        postprocess_type="NMS" if merge == "nms" else "GREEDYNMM",
        postprocess_match_metric=match.upper(),
        postprocess_match_threshold=0.5,
        postprocess_class_agnostic=False,
        force_postprocess_type=True,
        verbose=0,
    )
    theirs = sorted((p.bbox.to_xyxy(), p.score.value, p.category.id) for p in result.object_prediction_list)
    mine = sorted(zip(got["boxes"].tolist(), got["scores"].tolist(), got["labels"].tolist()))
    assert len(mine) == len(theirs) > 10  # 8 proposals x 7 views, merged
    for (box_a, score_a, label_a), (box_b, score_b, label_b) in zip(mine, theirs):
        assert label_a == label_b and score_a == pytest.approx(score_b, abs=1e-6)
        np.testing.assert_allclose(box_a, box_b, rtol=0, atol=1e-3)
