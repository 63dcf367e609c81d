"""The ``sparse-rcnn`` command: one module per verb group; ``main`` maps errors to exit statuses."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
