"""Sparse R-CNN: End-to-End Object Detection with Learnable Proposals (Sun et al., arXiv 2011.12450).

    >>> import sparse_rcnn
    >>> model = sparse_rcnn.load("sparse_rcnn_r50_fpn_1x_coco")          # published weights
    >>> model = sparse_rcnn.load("sparse_rcnn_r50_fpn_1x_coco", weights="ckpt.pth")
    >>> result = model.predict("street.jpg", score_thr=0.3)              # boxes in image pixels

The package mirrors the architecture: ``models`` (the paper's detector), ``ops`` (speed-ups),
``data``, ``engine`` (training, prediction), ``evaluation``, ``checkpoints``, ``deploy``,
``visualize`` and ``cli``; docs/architecture.md draws the data flow.
"""

from .config import Config, load_config
from .models import SparseRCNN, build_model
from .models import load_model as load

__version__ = "0.1.0"
__all__ = ["load", "Config", "load_config", "SparseRCNN", "build_model", "__version__"]
