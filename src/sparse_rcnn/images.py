"""Deprecated import path: use ``sparse_rcnn.data``. Kept for code written against 0.1; removed in 0.3."""

import warnings

from .data import MAX_PIXELS, ImageError, read_image  # noqa: F401

warnings.warn("sparse_rcnn.images moved to sparse_rcnn.data", DeprecationWarning, stacklevel=2)
