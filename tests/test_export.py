"""ONNX export (dynamic and fixed shapes) against PyTorch, the ONNX Runtime backend and the CLI."""

import json

import numpy as np
import pytest
import torch

from sparse_rcnn import cli
from sparse_rcnn.checkpoints import model_checkpoint, save_checkpoint
from sparse_rcnn.models import build_model
from tiny import tiny_config

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sparse_rcnn.deploy import OnnxDetector, export_onnx  # noqa: E402
from sparse_rcnn.deploy.export import default_exporter  # noqa: E402

SCORE_TOL, BOX_TOL = 1e-4, 0.1
CLASSES = ["cat", "dog", "bird", "fish", "car"]


def _config():
    return tiny_config(fpn_channels=64, num_proposals=12, ffn_dim=128, dynamic_dim=16, num_classes=5)


def spread_model():
    """The small test model (seed 0) with its proposals spread so that boxes fall on several FPN levels."""
    torch.manual_seed(0)
    m = build_model(_config().model, CLASSES).eval()
    with torch.no_grad():
        m.proposal_boxes.weight.copy_(
            torch.rand(12, 4) * torch.tensor([0.4, 0.4, 0.9, 0.9]) + torch.tensor([0.3, 0.3, 0.1, 0.1])
        )
    return m


@pytest.fixture(scope="module")
def model():
    return spread_model()


# the torch.export-based exporter takes ~10x longer than tracing on a 2-core CPU: an end-to-end (slow) test
EXPORTERS = (
    [pytest.param("dynamo", marks=pytest.mark.slow), "torchscript"]
    if default_exporter() == "dynamo"
    else ["torchscript"]
)


@pytest.fixture(scope="module", params=EXPORTERS)
def dynamic_onnx(model, tmp_path_factory, request):
    return export_onnx(
        model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", dynamic=True, size=(128, 160), exporter=request.param
    )


def _images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def _assert_same(expected, got):
    """Rank by rank; ranks whose scores tie within SCORE_TOL may swap."""
    e_scores, g_scores = expected["scores"].numpy(), got["scores"]
    assert e_scores.shape == g_scores.shape
    np.testing.assert_allclose(g_scores, e_scores, atol=SCORE_TOL, rtol=0)
    e_boxes, e_labels = expected["boxes"].numpy(), expected["labels"].numpy()
    for i in range(len(e_scores)):
        if got["labels"][i] == e_labels[i] and np.abs(got["boxes"][i] - e_boxes[i]).max() <= BOX_TOL:
            continue
        tie = np.nonzero((np.abs(g_scores - e_scores[i]) <= SCORE_TOL) & (got["labels"] == e_labels[i]))[0]
        assert any(np.abs(got["boxes"][j] - e_boxes[i]).max() <= BOX_TOL for j in tie), f"rank {i} has no match"


def test_metadata_and_graph(dynamic_onnx, model):
    proto = onnx.load(str(dynamic_onnx))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["images", "image_sizes"]
    assert [o.name for o in proto.graph.output] == ["boxes", "scores", "labels"]
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["class_names"] == CLASSES and meta["test_scale"] == [160, 128] and meta["size_divisor"] == 32
    assert any(n.op_type == "RoiAlign" and any(a.s == b"half_pixel" for a in n.attribute) for n in proto.graph.node)


def test_graph_is_static(dynamic_onnx):
    # No data-dependent shapes or control flow (TensorRT-friendly): the RoI pooler's fixed-shape
    # path pools every RoI at every level (2 stages x 4 levels) and selects with Where.
    nodes = [n.op_type for n in onnx.load(str(dynamic_onnx)).graph.node]
    assert {"NonZero", "ScatterND", "Loop", "If"}.isdisjoint(nodes)
    assert nodes.count("RoiAlign") == 2 * 4 and "Where" in nodes


def test_export_names_the_exporters(model, tmp_path):
    with pytest.raises(ValueError, match="`exporter` 'jit'.*dynamo or torchscript"):
        export_onnx(model, tmp_path / "a.onnx", exporter="jit")


@pytest.mark.parametrize("batch_size", [1, 2])
def test_onnxruntime_matches_pytorch_at_two_sizes(dynamic_onnx, model, batch_size):
    # Landscape and portrait originals: the resized batches have different padded shapes.
    images = _images([(90, 120), (150, 70), (200, 260), (64, 100)])
    detector = OnnxDetector(dynamic_onnx, threads=2)
    expected = model.predict([torch.from_numpy(a).permute(2, 0, 1) for a in images], batch_size=batch_size)
    got = detector(images, batch_size=batch_size)
    assert len(got) == 4
    for e, g in zip(expected, got):
        _assert_same(e, g)
        assert g["categories"] == e["categories"] or set(g["categories"]) == set(e["categories"])


@pytest.mark.slow
def test_fixed_shape_export_fills_the_batch_and_refuses_bigger_images(model, tmp_path):
    path = export_onnx(model, tmp_path / "fixed.onnx", batch_size=2, size=(128, 160))
    detector = OnnxDetector(path, threads=2)
    assert (detector.fixed_batch, detector.fixed_height, detector.fixed_width) == (2, 128, 160)
    images = _images([(90, 120), (60, 80), (30, 40)])  # 3 images: the last batch is filled up
    expected = model.predict([torch.from_numpy(a).permute(2, 0, 1) for a in images], batch_size=2)
    got = detector(images)
    # All three are landscape, padded to 128x160 as in the graph: PyTorch sees the same batch.
    assert len(got) == 3
    for e, g in zip(expected, got):
        _assert_same(e, g)
    with pytest.raises(ValueError, match="`dynamic`"):
        detector(_images([(150, 70)]))  # portrait: resized to 75x160, does not fit 160 wide x 128 high


def test_export_refuses_old_opsets_and_odd_sizes(model, tmp_path):
    with pytest.raises(ValueError, match="opset >= 16"):
        export_onnx(model, tmp_path / "a.onnx", opset=13)
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(model, tmp_path / "a.onnx", size=(100, 160))


def exported_with_images(model, tmp_path):
    """``model`` saved as a checkpoint and exported (dynamic) by the CLI, and a folder of three
    images of other sizes -> (checkpoint, folder, onnx file)."""
    from PIL import Image

    ckpt = tmp_path / "tiny.pth"
    save_checkpoint(model_checkpoint(model, _config()), ckpt)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(_images([(90, 120), (150, 70), (64, 64)], seed=1)):
        Image.fromarray(img).save(folder / f"{i}.png")
    onnx_path = tmp_path / "tiny.onnx"
    assert cli.main(["export", "--weights", str(ckpt), "--output", str(onnx_path), "--dynamic"]) == 0
    return ckpt, folder, onnx_path


def assert_same_records(expected_json, got_json, n):
    """Two `predict --output` files hold the same n images with the same detections (as ``_assert_same``)."""
    expected, got = json.loads(expected_json.read_text()), json.loads(got_json.read_text())
    assert [r["image"] for r in got] == [r["image"] for r in expected] and len(got) == n

    def as_arrays(r):
        return {
            "boxes": np.array([d["box"] for d in r["detections"]], dtype=np.float32),
            "scores": np.array([d["score"] for d in r["detections"]], dtype=np.float32),
            "labels": np.array([d["label"] for d in r["detections"]]),
        }

    for e, g in zip(expected, got):
        assert (e["width"], e["height"]) == (g["width"], g["height"])
        _assert_same({k: torch.from_numpy(v) for k, v in as_arrays(e).items()}, as_arrays(g))


@pytest.mark.slow
def test_cli_export_then_predict_with_onnxruntime_gives_the_torch_records(model, tmp_path, caplog):
    ckpt, folder, onnx_path = exported_with_images(model, tmp_path)
    torch_json, onnx_json = tmp_path / "torch.json", tmp_path / "onnx.json"
    assert cli.main(["predict", str(folder), "--weights", str(ckpt), "--output", str(torch_json)]) == 0
    assert cli.main(["predict", str(folder), "--onnx", str(onnx_path), "--output", str(onnx_json)]) == 0
    assert_same_records(torch_json, onnx_json, 3)
    # The ONNX backend takes no checkpoint; a missing --onnx is a one-line usage error.
    assert cli.main(["predict", str(folder), "--onnx", str(onnx_path), "--weights", str(ckpt)]) == 2
    assert cli.main(["predict", str(folder), "--runtime", "onnxruntime"]) == 2
    assert "needs --onnx" in caplog.text
