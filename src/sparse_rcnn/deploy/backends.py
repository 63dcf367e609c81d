"""The runtimes an exported ONNX file runs on, by name: ``load_detector`` opens one as a ``Detector``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .graph import GraphDetector
from .onnx_runtime import OnnxDetector
from .openvino_runtime import OpenVINODetector

RUNTIMES = ("onnxruntime", "openvino")


def load_detector(
    path: Union[str, Path], *, runtime: str = "onnxruntime", dtype: str = "fp32", threads: Optional[int] = None
) -> GraphDetector:
    """The exported file ``path`` on ``runtime`` (one of ``RUNTIMES``) in ``dtype`` (fp32; bf16
    with openvino on CPUs that have bf16 instructions), with ``threads`` CPU threads."""
    if runtime == "onnxruntime":
        if dtype != "fp32":
            raise ValueError(f"ONNX Runtime runs the exported fp32 graph: `dtype` {dtype} needs `runtime=openvino`")
        return OnnxDetector(path, threads=threads)
    if runtime == "openvino":
        return OpenVINODetector(path, dtype=dtype, threads=threads)
    raise ValueError(f"unknown `runtime` {runtime!r}: one of {', '.join(RUNTIMES)}")
