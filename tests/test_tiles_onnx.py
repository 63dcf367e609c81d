"""Tiles and test-time augmentation on an exported graph (dynamic shapes, onnxruntime): the same
detections as on the PyTorch model, within the export's tolerance. Skipped without onnxruntime."""

import numpy as np
import pytest
import torch

from sparse_rcnn.inference import TiledDetector, TTADetector
from sparse_rcnn.models import build_model
from tiny import tiny_config

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from sparse_rcnn.deploy import OnnxDetector, export_onnx  # noqa: E402


def test_wrappers_on_an_exported_graph_match_pytorch(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config().model, ["a", "b", "c"]).eval()
    graph = OnnxDetector(
        export_onnx(model, tmp_path / "tiny.onnx", dynamic=True, size=(128, 160), exporter="torchscript")
    )
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 130, 210), dtype=np.uint8))
    for wrap in (
        lambda d: TTADetector(d, scales=(0.8, 1.2), iou_thr=1.0, max_detections=100),
        lambda d: TiledDetector(d, (100, 90), iou_thr=1.0, max_detections=100),
    ):
        with torch.no_grad():
            expected = wrap(model).detect_resized([image], [(1.0, 1.0)])[0]
        got = wrap(graph).detect_resized([image], [(1.0, 1.0)])[0]
        assert len(got["scores"]) == len(expected["scores"]) > 8  # several views, nothing suppressed
        np.testing.assert_allclose(got["scores"].numpy(), expected["scores"].numpy(), rtol=0, atol=1e-4)
        # boxes as sets (ranks whose scores tie within the tolerance may swap)
        for box in expected["boxes"]:
            assert (got["boxes"] - box).abs().max(dim=1).values.min() <= 0.1
