"""The runtimes an exported ONNX file runs on, by name: ``load_detector`` opens one as a ``Detector``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional, Union

from .graph import GraphDetector

RUNTIMES = ("onnxruntime", "openvino")


class MissingPackageError(ImportError):
    """An optional runtime is not installed; the message says how to install it."""


def import_runtime(name: str):
    """``import name``, or a one-line ``MissingPackageError`` saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingPackageError(
            f'{name} is not installed: pip install -e ".[deploy]" (or pip install {name})'
        ) from None


def load_detector(
    path: Union[str, Path], *, runtime: str = "onnxruntime", dtype: str = "fp32", threads: Optional[int] = None
) -> GraphDetector:
    """The exported file ``path`` on ``runtime`` (one of ``RUNTIMES``) in ``dtype`` (fp32; bf16
    with openvino on CPUs that have bf16 instructions), with ``threads`` CPU threads."""
    if runtime == "onnxruntime":
        if dtype != "fp32":
            raise ValueError(f"ONNX Runtime runs the exported fp32 graph: `dtype` {dtype} needs `runtime=openvino`")
        from .runtime import OnnxDetector

        return OnnxDetector(path, threads=threads)
    if runtime == "openvino":
        from .openvino import OpenVINODetector

        return OpenVINODetector(path, dtype=dtype, threads=threads)
    raise ValueError(f"unknown `runtime` {runtime!r}: one of {', '.join(RUNTIMES)}")
