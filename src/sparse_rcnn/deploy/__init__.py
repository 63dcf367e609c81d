"""Deployment: ONNX export and the ONNX Runtime backend."""

from .export import export_onnx
from .runtime import OnnxDetector

__all__ = ["export_onnx", "OnnxDetector"]
