"""INT8 post-training quantization of an exported graph with OpenVINO's NNCF, written back as ONNX.

NNCF's ONNX backend inserts QuantizeLinear/DequantizeLinear (QDQ) pairs around the operations it
quantizes and sets their scales from statistics of calibration inputs, so the output is a plain
ONNX file that ONNX Runtime (QLinearConv on VNNI/AVX2) and OpenVINO (int8 kernels) both run.

What is quantized is a named ``scope`` (``SCOPES``). Sparse R-CNN's dynamic interaction multiplies
two activations (the proposal features' generated parameters with the RoI features), like
attention, and query-based heads are known to break in INT8 (RT-DETR fell to ~0 mAP until its
decoder stayed in floating point); the RoI head also holds a few percent of the work at 800x1333.
So the default, ``backbone``, quantizes the ResNet and FPN and keeps the RoI head in fp32;
``backbone+head`` also quantizes the head's matrix products. NNCF left alone would also quantize
the head's box arithmetic, which costs the demo model 0.05 box AP (``kept_in_fp32``).
BENCHMARKS.md has the measurements behind the default.

With a validation function (higher is better, e.g. box AP) NNCF's
``quantize_with_accuracy_control`` ranks the quantized operations by their effect on it and returns
them to fp32 one group at a time until the drop is at most ``max_ap_drop``; if it cannot get there,
``QuantizeError`` says what was reached and nothing is written. The file's ``metadata_props`` gain
``quantization`` (JSON: what was quantized, calibration size, the measured metric before and after).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..common import atomic_write
from .backends import load_detector
from .graph import GraphDetector, check_model_file
from .packages import import_runtime

log = logging.getLogger(__name__)

SCOPE_HELP = {
    "backbone": "the backbone and FPN in int8; the whole RoI head in fp32",
    "backbone+head": "the backbone, FPN and the head's matrix products (dynamic interaction, attention, FFN, "
    "class and box layers) in int8; the head's box arithmetic in fp32",
}
SCOPES = tuple(SCOPE_HELP)
MIN_CALIBRATION_IMAGES = 10
# the accuracy guard ranks each quantized operation by the metric on this many of the validation
# images (those the int8 graph gets most wrong; NNCF's default, 300, costs minutes per operation)
RANKING_IMAGES = 100
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear")

# graph inputs of one image: {"images": (1, 3, Hp, Wp) float32, "image_sizes": (1, 2) int64}
GraphInputs = dict[str, np.ndarray]
# (a runnable graph, the validation items to score it on) -> metric, higher is better (box AP)
Metric = Callable[[GraphDetector, Sequence[Any]], float]


class QuantizeError(ValueError):
    """The graph cannot be quantized as asked: too few calibration images, already quantized, or the
    accuracy guard not met."""


@dataclass(frozen=True)
class Quantization:
    """What ``quantize_onnx`` did; stored as JSON in the file's ``quantization`` metadata."""

    precision: str
    tool: str
    scope: str
    kept_fp32: str
    calibration_images: int
    quantized_ops: dict[str, int] = field(default_factory=dict)
    metric: Optional[str] = None
    fp32_metric: Optional[float] = None
    int8_metric: Optional[float] = None
    metric_drop: Optional[float] = None
    max_drop: Optional[float] = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})


def is_quantized(model: Any) -> bool:
    """Whether an ONNX ``ModelProto`` already holds quantization nodes."""
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def kept_in_fp32(model: Any, scope: str) -> list[str]:
    """Names of the nodes of an exported graph (``ModelProto``) that ``scope`` leaves in fp32.

    The backbone and FPN are the nodes the RoI pooler's feature maps (``RoiAlign``'s first input)
    come from; everything else is the head. Left to NNCF, the head's box arithmetic (decoding the
    deltas, the FPN level of each box) is quantized too, which moves every box (box AP of the demo
    model 0.526 -> 0.48), so it always stays in fp32."""
    producer = {out: node for node in model.graph.node for out in node.output}
    backbone: set[str] = set()
    pending = [node.input[0] for node in model.graph.node if node.op_type == "RoiAlign"]
    if not pending:
        raise QuantizeError("the graph has no RoiAlign node: not a Sparse R-CNN export of `sparse-rcnn export`")
    while pending:
        node = producer.get(pending.pop())
        if node is not None and node.name not in backbone:
            backbone.add(node.name)
            pending += list(node.input)
    products = ("MatMul", "Gemm") if scope == "backbone+head" else ()
    return [n.name for n in model.graph.node if n.name not in backbone and n.op_type not in products]


def quantized_ops(model: Any) -> dict[str, int]:
    """Operation type -> how many operations of an ONNX ``ModelProto`` read an int8 (dequantized) input."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS and dequantized.intersection(node.input):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def quantize_onnx(
    source: Union[str, Path],
    output: Union[str, Path],
    calibration: Sequence[GraphInputs],
    *,
    scope: str = "backbone",
    validation: Optional[Sequence[Any]] = None,
    metric: Optional[Metric] = None,
    metric_name: str = "box AP",
    max_ap_drop: float = 0.01,
    runtime: str = "onnxruntime",
) -> Quantization:
    """Quantize the exported graph ``source`` to INT8 and write it to ``output`` (QDQ ONNX).

    calibration: graph inputs of at least ``MIN_CALIBRATION_IMAGES`` images, pre-processed as
        ``predict`` does (``GraphDetector.batch`` of resized images), one image each.
    scope: a key of ``SCOPES``.
    validation, metric: items (e.g. image indices) and ``metric(detector, items)``, a score of the
        graph on those items, higher is better. With them, the accuracy guard: quantized
        operations go back to fp32 until ``metric`` drops by at most ``max_ap_drop`` (absolute);
        ``QuantizeError`` if that cannot be reached. ``runtime`` runs the graphs for ``metric``.
    """
    onnx = import_runtime("onnx")
    nncf = import_runtime("nncf", extra="int8")
    source, output = check_model_file(source), Path(output)
    if scope not in SCOPES:
        raise QuantizeError(f"unknown quantization `scope` {scope!r}: one of {', '.join(SCOPES)}")
    if len(calibration) < MIN_CALIBRATION_IMAGES:
        raise QuantizeError(
            f"{len(calibration)} calibration image(s): at least {MIN_CALIBRATION_IMAGES} are needed to set the "
            "int8 ranges (300 recommended); give more images (`num_images`)"
        )
    if (validation is None) != (metric is None):
        raise ValueError("pass `validation` and `metric` together")
    if not 0 <= max_ap_drop < 1:
        raise QuantizeError(f"`max_ap_drop` {max_ap_drop} must be at least 0 and below 1 (an absolute drop of AP)")
    model = onnx.load(str(source))
    if is_quantized(model):
        raise QuantizeError(f"{source} is already quantized (it holds QuantizeLinear nodes); quantize the fp32 export")
    meta = {p.key: p.value for p in model.metadata_props}
    ignored = nncf.IgnoredScope(names=kept_in_fp32(model, scope), validate=False)  # NNCF drops some nodes (Cast)
    dataset = nncf.Dataset(list(calibration))
    common = dict(subset_size=len(calibration), ignored_scope=ignored)
    fp32_value = int8_value = drop = None
    if metric is None:
        quantized = nncf.quantize(model, dataset, **common)
    else:
        assert validation is not None
        evaluate = _MetricOnProto(metric, runtime, meta)
        quantized = nncf.quantize_with_accuracy_control(
            model,
            dataset,
            nncf.Dataset(list(validation)),
            validation_fn=evaluate,
            max_drop=max_ap_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
                ranking_subset_size=RANKING_IMAGES
            ),
            **common,
        )
        fp32_value = evaluate.score(model, validation)
        int8_value = evaluate.score(quantized, validation)
        drop = fp32_value - int8_value
        if drop > max_ap_drop + 1e-9:
            raise QuantizeError(
                f"the int8 graph's {metric_name} is {int8_value:.4f} against {fp32_value:.4f} in fp32, a drop of "
                f"{drop:.4f} > `max_ap_drop` {max_ap_drop}; nothing written. Allow a larger drop, calibrate on more "
                "images, or quantize a smaller `scope`"
            )
    counts = quantized_ops(quantized)
    if not counts:
        raise QuantizeError(
            f"to hold `max_ap_drop` {max_ap_drop} every quantized operation went back to fp32: no int8 graph written; "
            "allow a larger drop or calibrate on more images"
        )
    report = Quantization(
        precision="int8",
        tool=f"nncf {nncf.__version__}",
        scope=scope,
        kept_fp32=SCOPE_HELP[scope],
        calibration_images=len(calibration),
        quantized_ops=counts,
        metric=metric_name if metric is not None else None,
        fp32_metric=_round(fp32_value),
        int8_metric=_round(int8_value),
        metric_drop=_round(drop),
        max_drop=max_ap_drop if metric is not None else None,
    )
    del quantized.metadata_props[:]
    for key, value in {**meta, "quantization": report.to_json()}.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output, "wb") as out:  # an old file at ``output`` survives until this one is complete
        out.file.write(quantized.SerializeToString())
    log.info("wrote %s: %s", output, report.to_json())
    return report


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 5)


class _MetricOnProto:
    """NNCF's ``validation_fn`` (an ONNX ``ModelProto`` and some validation items -> (metric, None)):
    the proto is written to a temporary file and opened as a ``GraphDetector`` on ``runtime``."""

    def __init__(self, metric: Metric, runtime: str, meta: dict[str, str]) -> None:
        self.metric, self.runtime, self.meta = metric, runtime, meta
        self._cached: Optional[tuple[Any, GraphDetector]] = None  # (the proto, kept alive, its detector)
        self._folder = tempfile.TemporaryDirectory(prefix="sparse-rcnn-quantize-")

    def detector(self, model: Any) -> GraphDetector:
        if self._cached is None or self._cached[0] is not model:
            if not model.metadata_props:  # NNCF's copies may drop the metadata the runtime needs
                for key, value in self.meta.items():
                    entry = model.metadata_props.add()
                    entry.key, entry.value = key, value
            path = Path(self._folder.name) / "candidate.onnx"
            path.write_bytes(model.SerializeToString())
            self._cached = (model, load_detector(path, runtime=self.runtime))
        return self._cached[1]

    def score(self, model: Any, items: Sequence[Any]) -> float:
        return float(self.metric(self.detector(model), list(items)))

    def __call__(self, model: Any, items: Any) -> tuple[float, None]:
        return self.score(model, list(items)), None
