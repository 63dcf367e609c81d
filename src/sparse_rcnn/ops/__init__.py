"""Speed-ups apart from the paper's files: each is bit-identical to the plain op, or opt-in."""

from .allocator import keep_freed_memory
from .compile import COMPILE_MODES, compile_detect
from .inference import PRECISIONS, optimize_for_inference
from .winograd import nnpack_available

__all__ = [
    "PRECISIONS",
    "optimize_for_inference",
    "compile_detect",
    "COMPILE_MODES",
    "keep_freed_memory",
    "nnpack_available",
]
