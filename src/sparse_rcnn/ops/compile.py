"""``torch.compile`` of the detector's inference graph (a speed-up apart from the paper).

``SparseRCNN.detect`` (normalised padded batch -> top-k) is one static graph: no host
synchronisation, no data-dependent shape (the RoI pooler's fixed-shape path, ``models.pooler``),
so it compiles whole (``fullgraph=True``). Normalising and padding (``ImageBatcher``, a Python
loop over differently sized images) and mapping the boxes back stay eager.

- ``dynamic=True`` (default): batch size, height and width are symbolic, so differently sized
  images do not recompile (one compilation, on the first call).
- ``mode="reduce-overhead"``: CUDA graphs on a GPU (the six stages' hundreds of small kernels
  replayed as one launch). A graph is recorded per input shape, so it suits fixed input sizes
  (benchmarks, a fixed-size deployment); the default is then ``dynamic=False``. Inductor skips
  CUDA graphs for CPU tensors: on the CPU it is the default mode.
- Reduced precision (fp16/bf16 autocast on CUDA, bf16 on CPUs that have it) is
  ``optimize_for_inference(dtype=...)``, applied before compiling; both compose.
On the CPU the backend is inductor (C++ through the system compiler: ``gcc`` must be present).
"""

from __future__ import annotations

import logging
from typing import Any, Optional, TypeVar

import torch
from torch.fx.experimental import _config as shape_config

# a SparseRCNN (models/ sits above ops/ and is not imported here)
Model = TypeVar("Model", bound=torch.nn.Module)

log = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_detect(
    model: Model,
    *,
    mode: str = "default",
    dynamic: Optional[bool] = None,
    backend: str = "inductor",
) -> Model:
    """Compile ``model.detect`` with ``torch.compile(fullgraph=True)``, in place; returns the model
    in eval mode. Compilation happens on the first call. The weights are not copied: the state
    dict, ``predict``, ``evaluate`` and the benchmark keep working on the same model.

    mode: ``torch.compile``'s mode (``COMPILE_MODES``); ``reduce-overhead`` = CUDA graphs.
    dynamic: symbolic batch/height/width (default: True, False for ``reduce-overhead``).
    backend: ``inductor``; ``aot_eager``/``eager`` check the graph capture without generating code.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose from {', '.join(COMPILE_MODES)}")
    if dynamic is None:
        dynamic = mode != "reduce-overhead"
    model.eval()
    net: Any = model  # a SparseRCNN: its ``detect`` is not known here
    detect = type(net).detect.__get__(net)  # the class's method, even if compiled before
    options: dict[str, Any] = {"mode": None if mode == "default" else mode} if backend == "inductor" else {}
    compiled = torch.compile(detect, fullgraph=True, dynamic=dynamic, backend=backend, **options)

    def compiled_detect(batch, image_sizes):
        # Without this, a first batch of 2 images would tie the batch size to image_sizes' 2
        # columns ("duck sizing") and the next batch size would compile again.
        with shape_config.patch(use_duck_shape=False):
            return compiled(batch, image_sizes)

    # An instance attribute shadows the method: detect_resized, forward and predict call it.
    net.detect = compiled_detect
    log.info(
        "compiling detect on its first call (torch.compile %s, mode %s, %s shapes)",
        backend,
        mode,
        "dynamic" if dynamic else "static",
    )
    return model
