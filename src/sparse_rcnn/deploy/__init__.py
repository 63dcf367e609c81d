"""Deployment: ONNX export, INT8 quantization, and the exported graph on ONNX Runtime or OpenVINO."""

from .backends import RUNTIMES, load_detector
from .export import EXPORTERS, export_onnx
from .graph import GraphDetector, GraphError
from .onnx_runtime import OnnxDetector
from .openvino_runtime import OpenVINODetector
from .packages import MissingPackageError, import_runtime
from .quantize import SCOPE_HELP, SCOPES, Quantization, QuantizeError, is_quantized, quantize_onnx

__all__ = [
    "export_onnx",
    "EXPORTERS",
    "GraphDetector",
    "GraphError",
    "OnnxDetector",
    "OpenVINODetector",
    "load_detector",
    "RUNTIMES",
    "MissingPackageError",
    "quantize_onnx",
    "is_quantized",
    "Quantization",
    "QuantizeError",
    "SCOPES",
    "SCOPE_HELP",
    "import_runtime",
]
