"""INT8 quantization (``sparse-rcnn quantize``, ``deploy.quantize_onnx``): the QDQ file runs on both
runtimes and keeps the fp32 answers' labels, carries what was done in its metadata, the accuracy
guard refuses a drop it cannot hold, and each bad input is one line."""

import json
import re
import sys

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.deploy import OnnxDetector, QuantizeError, export_onnx, is_quantized, load_detector, quantize_onnx
from sparse_rcnn.deploy.quantize import quantized_ops
from sparse_rcnn.engine.quantization import calibration_inputs
from sparse_rcnn.inference import ImageFiles
from sparse_rcnn.models import build_model
from tiny import tiny_config
from train_fixtures import make_coco

pytest.importorskip("nncf", reason='NNCF is not installed (pip install -e ".[int8]")')

CLASSES = ["class0", "class1", "class2"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(fp32 graph, int8 graph from the CLI, calibration folder, validation json, its images)."""
    root = tmp_path_factory.mktemp("quantize")
    torch.manual_seed(0)
    model = build_model(tiny_config(fpn_channels=64, num_proposals=12, num_classes=3).model, CLASSES).eval()
    with torch.no_grad():
        # proposals spread over the image (boxes on several FPN levels), boxes all but kept where the
        # proposals put them (box deltas near 0; not exactly 0: NNCF's accuracy control cannot take the
        # initializer two identical layers share) and class logits spread wide: an untrained model
        # whose answers are clear decisions
        model.proposal_boxes.weight.copy_(
            torch.rand(12, 4) * torch.tensor([0.4, 0.4, 0.9, 0.9]) + torch.tensor([0.3, 0.3, 0.1, 0.1])
        )
        for stage in model.stages:
            stage.box_deltas.weight.mul_(1e-3)
            stage.cls_logits.weight.mul_(20)
    fp32 = export_onnx(model, root / "fp32.onnx", dynamic=True, size=(128, 160), exporter="torchscript")
    _, calib = make_coco(root, [(96, 128), (128, 96), (120, 160)] * 5, name="calib", num_classes=3)
    val_ann, val_images = make_coco(root, [(96, 128)] * 4, name="val", seed=1, num_classes=3)
    int8 = root / "int8.onnx"
    rc = cli.main(["quantize", "--onnx", str(fp32), "--output", str(int8), "--images", str(calib)])
    assert rc == 0
    return fp32, int8, calib, val_ann, val_images


def test_int8_graph_runs_on_both_runtimes_and_keeps_the_fp32_labels(files):
    fp32, int8, calib, _, _ = files
    proto = onnx.load(str(int8))
    assert is_quantized(proto) and not is_quantized(onnx.load(str(fp32)))
    ops = quantized_ops(proto)
    assert ops.get("Conv", 0) >= 20 and "MatMul" not in ops and "Gemm" not in ops  # scope backbone: head in fp32
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["quantization"])
    assert meta["scope"] == "backbone" and meta["calibration_images"] == 15 and meta["precision"] == "int8"
    image = np.asarray(Image.open(sorted(calib.iterdir())[0]).convert("RGB"))
    reference = OnnxDetector(fp32)(image)
    for runtime in ("onnxruntime", "openvino"):
        detector = load_detector(int8, runtime=runtime)
        assert detector.quantization is not None and detector.quantization["scope"] == "backbone"
        got = detector(image)
        assert got["scores"].shape == reference["scores"].shape
        # each of the five best fp32 answers is an int8 answer too: the same label on a box of IoU > 0.8
        for box, label in zip(reference["boxes"][:5], reference["labels"][:5]):
            assert label in got["labels"][_iou(box, got["boxes"]) > 0.8], (runtime, box, label, got)
        np.testing.assert_allclose(got["scores"][:5], reference["scores"][:5], rtol=0.2)


def _iou(box, boxes):
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def test_predict_logs_what_was_quantized(files, run_cli, caplog, tmp_path):
    _, int8, calib, _, _ = files
    out = tmp_path / "int8.json"
    rc, errors = run_cli(["predict", str(calib), "--onnx", str(int8), "--runtime", "openvino", "--output", str(out)])
    assert rc == 0 and not errors
    assert any("int8 graph, scope backbone" in r.getMessage() for r in caplog.records)
    assert len(json.loads(out.read_text())) == 15


@pytest.mark.parametrize("restorer_returns", ["int8", "fp32"])
def test_the_guard_refuses_a_drop_it_cannot_hold_and_writes_nothing(files, tmp_path, monkeypatch, restorer_returns):
    """NNCF's restorer gives back the graph it could not repair (or, having reverted everything,
    the fp32 graph): the guard measures the drop itself and refuses either with one line."""
    nncf = pytest.importorskip("nncf")
    fp32, _, calib, _, _ = files
    detector = OnnxDetector(fp32)
    inputs = calibration_inputs(
        detector, ImageFiles([str(p) for p in sorted(calib.iterdir())], detector.test_scale), 12
    )

    def gave_up(model, calibration_dataset, validation_dataset, validation_fn, **kwargs):
        return nncf.quantize(model, calibration_dataset, subset_size=12) if restorer_returns == "int8" else model

    monkeypatch.setattr(nncf, "quantize_with_accuracy_control", gave_up)

    def fp32_only(graph, items):  # every int8 operation costs the whole metric
        return 0.0 if is_quantized(onnx.load(str(graph.path))) else 1.0

    output = tmp_path / "int8.onnx"
    expected = {
        "int8": "box AP is 0.0000 against 1.0000 in fp32, a drop of 1.0000 > `max_ap_drop` 0.5; nothing written",
        "fp32": "every quantized operation went back to fp32: no int8 graph written",
    }[restorer_returns]
    with pytest.raises(QuantizeError, match=re.escape(expected)):
        quantize_onnx(fp32, output, inputs, validation=[0, 1], metric=fp32_only, max_ap_drop=0.5)
    assert not list(tmp_path.iterdir())


def test_the_guard_passes_and_records_the_measured_drop(files, run_cli, tmp_path):
    fp32, _, calib, val_ann, val_images = files
    out = tmp_path / "guarded.onnx"
    argv = ["quantize", "--onnx", str(fp32), "--output", str(out), "--images", str(calib)]
    argv += ["--val-data", str(val_ann), "--val-images", str(val_images)]
    rc, errors = run_cli(argv + ["--max-ap-drop", "1"])
    assert rc == 2 and "--max-ap-drop 1.0 must be at least 0 and below 1" in errors[0], errors
    rc, errors = run_cli(argv + ["--max-ap-drop", "0.5"])
    assert rc == 0 and not errors
    meta = load_detector(out).quantization
    assert meta["metric"] == "box AP" and meta["max_drop"] == 0.5
    assert meta["metric_drop"] == pytest.approx(meta["fp32_metric"] - meta["int8_metric"], abs=2e-5)
    assert meta["metric_drop"] <= 0.5


@pytest.mark.parametrize(
    "case, message",
    [
        ("few", "3 calibration image(s): at least 10 are needed"),
        ("quantized", "is already quantized (it holds QuantizeLinear nodes)"),
        ("classes", "its classes are not the model's"),
        ("no-images", "name the calibration images"),
        ("no-nncf", 'nncf is not installed: pip install -e ".[int8]"'),
        ("scope", None),
    ],
)
def test_bad_inputs_are_one_line(files, run_cli, tmp_path, monkeypatch, case, message):
    fp32, int8, calib, val_ann, _ = files
    out = tmp_path / "out.onnx"
    base = ["quantize", "--output", str(out)]
    if case == "few":
        argv = base + ["--onnx", str(fp32), "--images", str(calib), "--num-images", "3"]
    elif case == "quantized":
        argv = base + ["--onnx", str(int8), "--images", str(calib)]
    elif case == "classes":
        other, other_images = make_coco(tmp_path, [(96, 128)] * 2, name="other", num_classes=2)
        argv = base + ["--onnx", str(fp32), "--images", str(calib), "--val-data", str(other)]
        argv += ["--val-images", str(other_images)]
    elif case == "no-images":
        argv = base + ["--onnx", str(fp32)]
    elif case == "no-nncf":
        monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
        argv = base + ["--onnx", str(fp32), "--images", str(calib)]
    else:
        with pytest.raises(QuantizeError, match="unknown quantization `scope` 'head'"):
            quantize_onnx(fp32, out, [], scope="head")
        return
    rc, errors = run_cli(argv)
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors
    assert not out.exists()
