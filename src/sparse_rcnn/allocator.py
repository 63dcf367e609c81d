"""Deprecated import path: use ``sparse_rcnn.ops``. Kept for code written against 0.1; removed in 0.3."""

import warnings

from .ops import keep_freed_memory  # noqa: F401

warnings.warn("sparse_rcnn.allocator moved to sparse_rcnn.ops", DeprecationWarning, stacklevel=2)
