"""The inference graph is static: ``detect`` compiles whole (``torch.compile(fullgraph=True)``: a
host synchronisation or data-dependent shape would break it) and exports with ``torch.export``
with dynamic batch, height and width; ``predict --compile`` gives the eager records."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn.checkpoints import model_checkpoint, save_checkpoint
from sparse_rcnn.models import build_model
from sparse_rcnn.ops import compile_detect, optimize_for_inference
from tiny import tiny_config

SCORE_TOL = 1e-5
# (batch, padded height, padded width); the images' own sizes are smaller than the padded batch.
# Batch 1 is left out of the compiled cases: PyTorch specialises a dimension of size 1, so batch 1
# gets its own graph (one more compilation); torch.export's dims cover it.
COMPILED = [(2, 128, 160), (3, 96, 224), (2, 160, 128)]
EXPORTED = [(2, 128, 160), (1, 96, 224), (3, 160, 128)]


def _model():
    torch.manual_seed(0)
    model = build_model(tiny_config().model, ["cat", "dog", "bird"]).eval()
    with torch.no_grad():  # spread the proposals over the image so that the RoIs fall on several FPN levels
        model.proposal_boxes.weight.copy_(
            torch.rand(8, 4) * torch.tensor([0.4, 0.4, 0.9, 0.9]) + torch.tensor([0.3, 0.3, 0.1, 0.1])
        )
    return model


def _inputs(batch, height, width, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, height, width, generator=gen)
    sizes = torch.tensor([[height - 7 * i, width - 11 * i] for i in range(batch)])
    return images, sizes


def _eager(model, images, sizes):
    with torch.no_grad():
        return type(model).detect(model, images, sizes)


def _assert_close(expected, got):
    e_boxes, e_scores, e_labels = expected
    boxes, scores, labels = got
    assert scores.shape == e_scores.shape and torch.equal(labels, e_labels)
    torch.testing.assert_close(scores, e_scores, rtol=0, atol=SCORE_TOL)
    torch.testing.assert_close(boxes, e_boxes, rtol=1e-4, atol=1e-2)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def compiled(model):
    """The model with ``detect`` compiled by inductor (one compilation for the module)."""
    compiled = compile_detect(_model())
    compiled.load_state_dict(model.state_dict())
    with torch.no_grad():
        compiled.detect(*_inputs(*COMPILED[0]))
    return compiled


@pytest.mark.slow
def test_compiled_detect_matches_eager_without_recompiling(model, compiled):
    levels = set()
    for batch, height, width in COMPILED:
        images, sizes = _inputs(batch, height, width)
        with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True):
            got = compiled.detect(images, sizes)  # other batch sizes and sizes: the same dynamic graph
        _assert_close(_eager(model, images, sizes), got)
        boxes = got[0].reshape(-1, 4)
        levels |= set(
            torch.floor(torch.log2(((boxes[:, 2:] - boxes[:, :2]).prod(1).clamp(min=0).sqrt()) / 56 + 1e-6))
            .clamp(0, 3)
            .long()
            .tolist()
        )
    assert len(levels) >= 2  # the pooler's level selection is exercised


@pytest.mark.slow
def test_reduced_precision_captures_one_graph_too():
    # bf16 convolutions and head autocast (fp16 on CUDA goes the same way): no graph break either.
    # aot_eager captures the graph as inductor does, without generating code.
    model = optimize_for_inference(_model(), dtype="bf16")
    expected = _eager(model, *_inputs(*COMPILED[0]))
    compile_detect(model, backend="aot_eager")
    with torch.no_grad():
        got = model.detect(*_inputs(*COMPILED[0]))
    # the captured graph rounds bf16 in other places: scores agree to bf16's precision (ranks
    # with near-equal scores may swap labels)
    assert got[1].shape == expected[1].shape
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-2)


@pytest.mark.slow
def test_torch_export_with_dynamic_batch_height_and_width(model):
    from torch.export import Dim

    from sparse_rcnn.deploy.export import DetectGraph

    batch = Dim("batch", min=1)
    height, width = 32 * Dim("h", min=1), 32 * Dim("w", min=1)
    with torch.no_grad():
        program = torch.export.export(
            DetectGraph(model).eval(),
            _inputs(*EXPORTED[0]),
            dynamic_shapes={"images": {0: batch, 2: height, 3: width}, "image_sizes": {0: batch}},
        )
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("nonzero" in op or "index_copy" in op or "_local_scalar_dense" in op for op in ops), ops
    exported = program.module()
    for case in EXPORTED[1:]:  # two other sizes, batch sizes 1 and 3
        images, sizes = _inputs(*case, seed=1)
        with torch.no_grad():
            _assert_close(_eager(model, images, sizes), exported(images, sizes))


@pytest.mark.slow
def test_cli_predict_compile_gives_the_eager_records(compiled, tmp_path, run_cli):
    ckpt = tmp_path / "tiny.pth"
    save_checkpoint(model_checkpoint(compiled, tiny_config(num_classes=3)), ckpt)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    # batches of 2 (as the compiled fixture) of two padded sizes
    for i, (h, w) in enumerate([(90, 120), (100, 130), (150, 70), (140, 64)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    records = {}
    for name, extra in [("eager", []), ("compiled", ["--compile"])]:
        out = tmp_path / f"{name}.json"
        argv = ["predict", str(folder), "--weights", str(ckpt), "--output", str(out), "--batch-size", "2"]
        assert run_cli(argv + extra)[0] == 0
        records[name] = json.loads(out.read_text())
    assert len(records["compiled"]) == 4
    for e, g in zip(records["eager"], records["compiled"]):
        assert [d["label"] for d in g["detections"]] == [d["label"] for d in e["detections"]]
        np.testing.assert_allclose(
            [d["score"] for d in g["detections"]], [d["score"] for d in e["detections"]], rtol=0, atol=SCORE_TOL
        )
