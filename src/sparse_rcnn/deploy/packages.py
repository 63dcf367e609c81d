"""The optional runtime packages (``onnxruntime``, ``openvino``): imported on first use, with a
one-line error saying how to install one that is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingPackageError(ImportError):
    """An optional runtime is not installed; the message says how to install it."""


def import_runtime(name: str, extra: str = "deploy") -> ModuleType:
    """``import name``, or a one-line ``MissingPackageError`` saying how to install it (with our ``extra``)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingPackageError(
            f'{name} is not installed: pip install -e ".[{extra}]" (or pip install {name})'
        ) from None
