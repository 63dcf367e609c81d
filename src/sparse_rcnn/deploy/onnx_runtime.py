"""ONNX Runtime backend: the exported graph (``export.py``) run by ``onnxruntime``; the pre- and
post-processing around it is ``graph.GraphDetector``'s."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .graph import GraphDetector, check_model_file, check_signature
from .packages import import_runtime

log = logging.getLogger(__name__)


class OnnxDetector(GraphDetector):
    """Run a ``sparse-rcnn export`` file with ONNX Runtime.

    Args:
        path: the .onnx file.
        providers: ONNX Runtime execution providers (default: all available, best first,
            e.g. CUDA then CPU).
        threads: intra-op threads of the CPU provider (default: ONNX Runtime's choice).
    """

    runtime = "onnxruntime"
    dtype = "fp32"

    def __init__(
        self, path: Union[str, Path], *, providers: Optional[Sequence[str]] = None, threads: Optional[int] = None
    ) -> None:
        ort = import_runtime("onnxruntime")
        self.path = check_model_file(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.threads, self.version = threads, ort.__version__
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=list(providers or ort.get_available_providers())
            )
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise ValueError(
                f"{self.path}: not a loadable ONNX model ({type(e).__name__}: {str(e).splitlines()[0]})"
            ) from None
        check_signature(
            self.path, [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        )
        shape = self.session.get_inputs()[0].shape
        self.set_graph_info(
            self.session.get_modelmeta().custom_metadata_map, [d if isinstance(d, int) else None for d in shape]
        )

    def run_graph(self, images: np.ndarray, image_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, scores, labels = self.session.run(None, {"images": images, "image_sizes": image_sizes})
        return boxes, scores, labels
