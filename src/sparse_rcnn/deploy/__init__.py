"""Deployment: ONNX export, and the exported graph on ONNX Runtime or OpenVINO."""

from .backends import RUNTIMES, MissingPackageError, load_detector
from .export import EXPORTERS, export_onnx
from .graph import GraphDetector, GraphError
from .openvino import OpenVINODetector
from .runtime import OnnxDetector

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
]
