"""ONNX export of the whole detector (paper Sec. 3.5: inference is NMS-free, so it is one graph).

The graph is ``SparseRCNN.detect``: a normalised, zero-padded batch ``images`` (B, 3, Hp, Wp)
float32 and ``image_sizes`` (B, 2) int64 (h, w of each unpadded resized image) -> top-k
``boxes`` (B, k, 4) xyxy in the resized image's pixels, ``scores`` (B, k) float32 sorted high to
low, ``labels`` (B, k) int64. Decoding, resizing, normalising, padding and dividing the boxes by
the scale factor stay outside (see ``runtime.py``); what they need is written into the model's
``metadata_props`` (``METADATA_KEYS``).

The graph is static: the RoI pooler takes its fixed-shape path while a graph is captured
(``models.pooler``: every RoI pooled at every FPN level, ``Where`` keeps its own), so it holds no
NonZero, ScatterND, Loop or If node and suits TensorRT as well as ONNX Runtime. torchvision's
``roi_align`` becomes ONNX ``RoiAlign`` (opset >= 16: ``coordinate_transformation_mode=
"half_pixel"`` is ``aligned=True``). Two exporters (``exporter``):
- ``dynamo`` (default where ``onnxscript`` is installed and converts ``torchvision::roi_align``,
  0.7 and later): PyTorch's ``torch.export``-based exporter, ``torch.onnx.export(dynamo=True)``;
  dynamic batch, height (a multiple of the size divisor) and width as ``torch.export`` dims.
- ``torchscript``: the older tracing exporter (``dynamo=False``, deprecated since torch 2.9), the
  fallback without ``onnxscript``; it gives the same nodes.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor, nn

from ..common import atomic_write
from ..models import SparseRCNN

log = logging.getLogger(__name__)

INPUT_NAMES = ["images", "image_sizes"]
OUTPUT_NAMES = ["boxes", "scores", "labels"]
MIN_OPSET = 16  # RoiAlign with half_pixel coordinates (= aligned=True)
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}  # 18: the opset onnxscript's functions are written in
EXPORTERS = ("dynamo", "torchscript")
# metadata_props written at export; everything a runtime needs besides the graph (JSON values).
# "score_thresholds" only when the model has them (chosen by ``evaluation.choose_thresholds``).
METADATA_KEYS = (
    "class_names",
    "test_scale",
    "pixel_mean",
    "pixel_std",
    "size_divisor",
    "model_name",
    "score_thresholds",
)


class DetectGraph(nn.Module):
    """The exported function: ``model.detect`` with plain tensor inputs and outputs."""

    def __init__(self, model: SparseRCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return type(self.model).detect(self.model, images, image_sizes)  # the method, even if compiled


def default_exporter() -> str:
    """``dynamo`` where onnxscript can convert torchvision's ``roi_align``, else ``torchscript``."""
    try:
        from onnxscript.function_libs.torch_lib.ops import vision
    except ImportError:
        return "torchscript"
    return "dynamo" if hasattr(vision, "torchvision_roi_align") else "torchscript"


def export_metadata(model: SparseRCNN, name: Optional[str] = None) -> dict[str, str]:
    """The ``metadata_props`` of the exported file: class names and pre-processing constants."""
    batcher = model.batcher
    thresholds = getattr(model, "score_thresholds", None)
    return {
        "class_names": json.dumps(list(model.class_names)),
        "test_scale": json.dumps(list(model.test_scale)),
        "pixel_mean": json.dumps([float(v) for v in batcher.mean.flatten().tolist()]),
        "pixel_std": json.dumps([float(v) for v in batcher.std.flatten().tolist()]),
        "size_divisor": json.dumps(int(batcher.size_divisor)),
        "model_name": json.dumps(name or getattr(getattr(model, "config", None), "name", None) or "sparse-rcnn"),
        **({"score_thresholds": json.dumps(thresholds)} if thresholds else {}),
    }


def default_input_size(test_scale: tuple[int, int], size_divisor: int = 32) -> tuple[int, int]:
    """(Hp, Wp) of a landscape image at the test scale, padded: (800, 1344) for 1333x800."""
    pad = lambda v: -(-v // size_divisor) * size_divisor  # noqa: E731
    return pad(min(test_scale)), pad(max(test_scale))


@torch.no_grad()
def export_onnx(
    model: SparseRCNN,
    path: Union[str, Path],
    *,
    batch_size: int = 1,
    size: Optional[tuple[int, int]] = None,
    dynamic: bool = False,
    opset: Optional[int] = None,
    name: Optional[str] = None,
    exporter: Optional[str] = None,
) -> Path:
    """Write ``model`` (a ``SparseRCNN``; fp32, or fp64 for exactness checks) as an ONNX file; returns the path.

    size: (Hp, Wp) of the example batch (multiples of the size divisor; default: a landscape
        image at the test scale). Without ``dynamic`` the graph accepts exactly
        (batch_size, 3, Hp, Wp); with it, any batch size and any padded height and width.
    exporter: ``dynamo`` or ``torchscript`` (default: ``default_exporter()``; see the module docstring).
    opset: at least 16 (default: 18 with dynamo, 17 with torchscript).
    """
    import onnx

    exporter = exporter or default_exporter()
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown `exporter` {exporter!r}; choose dynamo or torchscript")
    if exporter == "dynamo" and default_exporter() != "dynamo":
        raise ValueError(
            "`exporter=dynamo` needs onnxscript 0.7 or later (pip install onnxscript); or pass `exporter=torchscript`"
        )
    opset = opset or DEFAULT_OPSET[exporter]
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: RoIAlign with aligned=True needs opset >= {MIN_OPSET}")
    if getattr(model, "head_autocast", None) is not None or getattr(model.backbone, "compute_dtype", None) is not None:
        raise ValueError("export an fp32 model (do not call optimize_for_inference with a reduced dtype first)")
    divisor = model.batcher.size_divisor
    hp, wp = size or default_input_size(model.test_scale, divisor)
    if hp % divisor or wp % divisor or hp <= 0 or wp <= 0:
        raise ValueError(f"`size` {hp}x{wp}: height and width must be positive multiples of {divisor}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    traced = path.with_name(f".{path.name}.trace.tmp")
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    # Any content traces the same graph; random values just keep the trace's boxes non-degenerate.
    gen = torch.Generator().manual_seed(0)
    # (a dynamic batch is traced with 2 images: torch.export specialises a dimension of size 1)
    example_batch = max(batch_size, 2) if dynamic and exporter == "dynamo" else batch_size
    images = torch.randn(example_batch, 3, hp, wp, generator=gen).to(param.device, param.dtype)
    image_sizes = torch.tensor([[hp, wp]] * example_batch, dtype=torch.int64, device=param.device)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # nn.MultiheadAttention's inference fast path is one fused op with no ONNX conversion; the
        # regular path is the same arithmetic in plain ops.
        torch.backends.mha.set_fastpath_enabled(False)
        graph, args = DetectGraph(model).eval(), (images, image_sizes)
        if exporter == "dynamo":
            proto = _export_dynamo(graph, args, opset, dynamic, divisor)
        else:
            proto = _export_torchscript(graph, args, opset, dynamic, traced)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
        traced.unlink(missing_ok=True)
    for key, value in export_metadata(model, name).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    with atomic_write(path, "wb") as out:  # a previous file at ``path`` survives until this one is complete
        out.file.write(proto.SerializeToString())
    log.info(
        "wrote %s (%s exporter, opset %d, %s input %s)",
        path,
        exporter,
        opset,
        "dynamic" if dynamic else "static",
        "(B, 3, H, W)" if dynamic else f"({batch_size}, 3, {hp}, {wp})",
    )
    return path


def _export_dynamo(graph: nn.Module, args: tuple[Tensor, Tensor], opset: int, dynamic: bool, divisor: int):
    """``torch.onnx.export(dynamo=True)`` -> ModelProto; height and width are multiples of ``divisor``."""
    from torch.export import Dim

    dynamic_shapes = None
    if dynamic:
        batch = Dim("batch", min=1)
        height, width = divisor * Dim("height_blocks", min=1), divisor * Dim("width_blocks", min=1)
        dynamic_shapes = {"images": {0: batch, 2: height, 3: width}, "image_sizes": {0: batch}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")  # batch names two inputs' dim
        program = torch.onnx.export(
            graph,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
            report=False,
        )
    assert program is not None  # dynamo=True returns the program
    proto = program.model_proto
    if dynamic:  # name the dims as the torchscript exporter does
        for value in [*proto.graph.input, *proto.graph.output]:
            dims = value.type.tensor_type.shape.dim
            for i, label in {0: "batch", 2: "height", 3: "width"}.items():
                if i < len(dims) and (i == 0 or value.name == "images") and not dims[i].HasField("dim_value"):
                    dims[i].dim_param = label
    return proto


def _export_torchscript(graph: nn.Module, args: tuple[Tensor, Tensor], opset: int, dynamic: bool, traced: Path):
    """The tracing exporter (``dynamo=False``) -> ModelProto (written to ``traced`` on the way)."""
    import onnx

    dynamic_axes = None
    if dynamic:
        dynamic_axes = {
            "images": {0: "batch", 2: "height", 3: "width"},
            "image_sizes": {0: "batch"},
            **{out: {0: "batch"} for out in OUTPUT_NAMES},
        }
    with warnings.catch_warnings():
        # The tracer warns about Python ints taken from shapes (N, C, k: fixed by the model)
        # and that the TorchScript exporter is the legacy one; neither applies here.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            graph,
            args,
            str(traced),
            dynamo=False,
            opset_version=opset,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    return onnx.load(str(traced))
