"""OpenVINO backend: the exported ONNX graph (``export.py``) compiled by Intel's OpenVINO for the CPU.

OpenVINO reads the ONNX file directly (its metadata_props arrive as the model's ``framework``
runtime info) and compiles it for the device. Its ``INFERENCE_PRECISION_HINT`` is the precision:
``fp32``, or ``bf16`` (OpenVINO keeps what needs range in fp32 and runs the rest in bfloat16) on
CPUs with bf16 instructions (AVX512_BF16 or AMX); elsewhere OpenVINO would silently run fp32, so
``bf16`` is refused there. The pre- and post-processing is ``graph.GraphDetector``'s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .graph import REQUIRED_METADATA, GraphDetector, check_model_file, check_signature
from .packages import import_runtime

log = logging.getLogger(__name__)

# our precision name -> OpenVINO's INFERENCE_PRECISION_HINT
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
_OPTIONAL_METADATA = ("model_name", "score_thresholds", "quantization")


def supports_bf16(device: str = "CPU") -> bool:
    """Whether OpenVINO can run bf16 arithmetic on ``device`` (the CPU: AVX512_BF16 or AMX)."""
    core = import_runtime("openvino").Core()
    return "BF16" in core.get_property(device, "OPTIMIZATION_CAPABILITIES")


class OpenVINODetector(GraphDetector):
    """Run a ``sparse-rcnn export`` file with OpenVINO.

    Args:
        path: the .onnx file.
        dtype: ``fp32`` or ``bf16`` (OpenVINO's inference precision hint).
        threads: inference threads (default: OpenVINO's choice, one per physical core).
        device: OpenVINO device name (default ``CPU``).
    """

    runtime = "openvino"

    def __init__(
        self, path: Union[str, Path], *, dtype: str = "fp32", threads: Optional[int] = None, device: str = "CPU"
    ) -> None:
        ov = import_runtime("openvino")
        if dtype not in PRECISION_HINTS:
            raise ValueError(f"OpenVINO runs `dtype` {' or '.join(PRECISION_HINTS)}, not {dtype!r}")
        self.path = check_model_file(path)
        core = ov.Core()
        if dtype == "bf16" and "BF16" not in core.get_property(device, "OPTIMIZATION_CAPABILITIES"):
            name = core.get_property(device, "FULL_DEVICE_NAME")
            raise ValueError(
                f"this {device} ({name}) has no bf16 instructions (AVX512_BF16 or AMX), "
                "so OpenVINO would run fp32: use `dtype=fp32`"
            )
        try:
            model = core.read_model(str(self.path))
        except RuntimeError as e:  # OpenVINO's frontends raise RuntimeError with a multi-line report
            reason = next((ln for ln in str(e).splitlines() if "Unable" in ln or "rror" in ln), "unreadable")
            raise ValueError(f"{self.path}: not a loadable ONNX model ({reason.strip()[:200]})") from None
        meta = {
            k: model.get_rt_info(["framework", k]).astype(str)
            for k in REQUIRED_METADATA + _OPTIONAL_METADATA
            if model.has_rt_info(["framework", k])
        }
        check_signature(
            self.path, [p.get_any_name() for p in model.inputs], [n for p in model.outputs for n in p.get_names()]
        )
        shape = model.inputs[0].get_partial_shape()
        self.set_graph_info(meta, [d.get_length() if d.is_static else None for d in shape])
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[dtype], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        self.dtype, self.device, self.version = dtype, device, ov.__version__.split("-")[0]
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS")) or threads  # 0: OpenVINO's choice
        self._outputs = [self.compiled.output(name) for name in ("boxes", "scores", "labels")]
        log.debug(
            "OpenVINO %s on %s: precision %s, %s threads",
            self.version,
            device,
            self.compiled.get_property("INFERENCE_PRECISION_HINT"),
            self.threads,
        )

    def run_graph(self, images: np.ndarray, image_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.request.infer({"images": images, "image_sizes": image_sizes})  # copies the outputs
        boxes, scores, labels = (out[port] for port in self._outputs)
        return boxes, scores, labels
