"""The OpenVINO backend: the exported graph against PyTorch, its precision hint, the CLI round trip
(predict, eval, benchmark) and the error when OpenVINO is not installed."""

import json

import numpy as np
import pytest
import torch

from sparse_rcnn.deploy import MissingPackageError, OpenVINODetector, export_onnx, load_detector
from sparse_rcnn.deploy.openvino_runtime import supports_bf16
from test_export import CLASSES, _assert_same, _images, assert_same_records, exported_with_images, spread_model
from train_fixtures import make_coco

pytest.importorskip("openvino", reason='OpenVINO is not installed (pip install -e ".[deploy]")')


@pytest.fixture(scope="module")
def model():
    return spread_model()


@pytest.fixture(scope="module")
def dynamic_onnx(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", dynamic=True, size=(128, 160))


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 2])
def test_openvino_fp32_matches_pytorch_at_two_sizes(dynamic_onnx, model, batch_size):
    # Landscape and portrait originals: the resized batches have different padded shapes.
    images = _images([(90, 120), (150, 70), (200, 260), (64, 100)])
    detector = OpenVINODetector(dynamic_onnx, threads=2)
    assert (detector.fixed_batch, detector.fixed_height, detector.fixed_width) == (None, None, None)
    assert detector.class_names == CLASSES and detector.threads == 2
    expected = model.predict([torch.from_numpy(a).permute(2, 0, 1) for a in images], batch_size=batch_size)
    got = detector(images, batch_size=batch_size)
    assert len(got) == 4
    for e, g in zip(expected, got):
        _assert_same(e, g)


@pytest.mark.slow
def test_openvino_fixed_shape_fills_the_batch(model, tmp_path):
    path = export_onnx(model, tmp_path / "fixed.onnx", batch_size=2, size=(128, 160))
    detector = load_detector(path, runtime="openvino", threads=1)
    assert (detector.fixed_batch, detector.fixed_height, detector.fixed_width) == (2, 128, 160)
    images = _images([(90, 120), (60, 80), (30, 40)])
    expected = model.predict([torch.from_numpy(a).permute(2, 0, 1) for a in images], batch_size=2)
    for e, g in zip(expected, detector(images)):
        _assert_same(e, g)


def test_bf16_runs_where_the_cpu_has_it_and_is_refused_elsewhere(dynamic_onnx, model):
    images = _images([(90, 120), (150, 70)])
    if not supports_bf16():
        with pytest.raises(ValueError, match="no bf16 instructions.*`dtype=fp32`"):
            OpenVINODetector(dynamic_onnx, dtype="bf16")
        return
    detector = OpenVINODetector(dynamic_onnx, dtype="bf16", threads=2)
    expected = model.predict([torch.from_numpy(a).permute(2, 0, 1) for a in images])
    for e, g in zip(expected, detector(images)):
        assert g["scores"].shape == e["scores"].shape and np.all(np.diff(g["scores"]) <= 0)
        np.testing.assert_allclose(
            np.sort(g["scores"]), np.sort(e["scores"].numpy()), atol=0.05
        )  # bf16: 8 bits of mantissa


def test_wrong_precision_and_runtime_are_refused(dynamic_onnx):
    with pytest.raises(ValueError, match="fp32 or bf16"):
        OpenVINODetector(dynamic_onnx, dtype="fp16")
    with pytest.raises(ValueError, match="`runtime=openvino`"):
        load_detector(dynamic_onnx, runtime="onnxruntime", dtype="bf16")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        bad = dynamic_onnx.with_name("bad.onnx")
        bad.write_bytes(b"not a model")
        OpenVINODetector(bad)


@pytest.mark.slow
def test_cli_predict_eval_benchmark_with_openvino(model, tmp_path, run_cli):
    ckpt, folder, onnx_path = exported_with_images(model, tmp_path)
    torch_json, ov_json = tmp_path / "torch.json", tmp_path / "ov.json"
    assert (
        run_cli(["predict", str(folder), "--weights", str(ckpt), "--batch-size", "2", "--output", str(torch_json)])[0]
        == 0
    )
    assert (
        run_cli(
            [
                "predict",
                str(folder),
                "--onnx",
                str(onnx_path),
                "--runtime",
                "openvino",
                "--threads",
                "2",
                "--batch-size",
                "2",
                "--output",
                str(ov_json),
            ]
        )[0]
        == 0
    )
    assert_same_records(torch_json, ov_json, 3)

    # eval: the same AP as PyTorch on a small COCO set (boxes of 3 classes; the categories named as the model's 5)
    ann, images = make_coco(tmp_path / "coco", [(90, 120), (120, 90), (100, 100)], num_classes=3, name="val")
    data = json.loads(ann.read_text())
    data["categories"] = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]
    ann.write_text(json.dumps(data))
    metrics = {}
    for name, argv in (
        ("torch", ["--weights", str(ckpt)]),
        ("openvino", ["--onnx", str(onnx_path), "--runtime", "openvino"]),
    ):
        out = tmp_path / f"{name}_metrics.json"
        assert run_cli(["eval", "--ann", str(ann), "--images", str(images), *argv, "--output", str(out)])[0] == 0
        metrics[name] = json.loads(out.read_text())
    assert (
        metrics["openvino"]["runtime"] == "openvino"
        and metrics["openvino"]["num_detections"] == metrics["torch"]["num_detections"]
    )
    assert metrics["openvino"]["bbox_mAP"] == pytest.approx(metrics["torch"]["bbox_mAP"], abs=1e-3)

    # benchmark: the same JSON fields as the PyTorch model's
    bench = tmp_path / "bench.json"
    assert (
        run_cli(
            [
                "benchmark",
                "--onnx",
                str(onnx_path),
                "--runtime",
                "openvino",
                "--threads",
                "1",
                "--size",
                "96x128",
                "--iters",
                "2",
                "--warmup",
                "0",
                "--batch-size",
                "2",
                "--output",
                str(bench),
            ]
        )[0]
        == 0
    )
    result = json.loads(bench.read_text())
    assert result["runtime"] == "openvino" and result["dtype"] == "fp32" and result["threads"] == 1
    assert result["batch_size"] == 2 and len(result["latency_ms_all"]) == 2 and result["images_per_s"] > 0
    assert result["latency_ms_median"] <= result["latency_ms_p90"] and result["peak_mem_mb"] > 0

    # one-line usage errors
    rc, errors = run_cli(
        ["predict", str(folder), "--onnx", str(onnx_path), "--runtime", "onnxruntime", "--dtype", "bf16"]
    )
    assert rc == 2 and "--runtime openvino" in errors[0]
    rc, errors = run_cli(["predict", str(folder), "--runtime", "openvino"])
    assert rc == 2 and "--onnx" in errors[0]
    rc, errors = run_cli(["benchmark", "--onnx", str(onnx_path), "--runtime", "openvino", "--train"])
    assert rc == 2 and "--train" in errors[0]


def test_missing_openvino_is_one_line_with_the_install_command(dynamic_onnx, tmp_path, monkeypatch, run_cli):
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)  # `import openvino` raises ImportError
    with pytest.raises(MissingPackageError, match=r'pip install -e "\.\[deploy\]"'):
        load_detector(dynamic_onnx, runtime="openvino")
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(_images([(40, 50)])[0]).save(image)
    rc, errors = run_cli(["predict", str(image), "--onnx", str(dynamic_onnx), "--runtime", "openvino"])
    assert rc == 2 and errors == ['openvino is not installed: pip install -e ".[deploy]" (or pip install openvino)']
