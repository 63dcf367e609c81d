"""Deprecated import path: use ``sparse_rcnn.deploy``. Kept for code written against 0.1; removed in 0.3."""

import warnings

from .deploy import OnnxDetector  # noqa: F401

warnings.warn("sparse_rcnn.runtime moved to sparse_rcnn.deploy", DeprecationWarning, stacklevel=2)
