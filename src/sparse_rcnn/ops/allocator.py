"""Keep freed CPU memory in the process instead of handing it back to the kernel after every tensor.

glibc's malloc serves every allocation above 32 MiB with a fresh ``mmap`` and returns it with
``munmap`` when the tensor dies. A Sparse R-CNN forward at 800x1333 makes dozens of such tensors
(one ResNet stage-1 activation alone is 69 MB), so each forward touches gigabytes of new pages:
about 700k page faults and 1.5 s of kernel time per R-50 image on a 2-core machine, a third of the
wall time. Turning ``mmap`` off for malloc and never trimming the heap lets the second forward reuse
the first one's memory, the way jemalloc/tcmalloc behave. The arithmetic is untouched; the cost is
that the process keeps its peak heap until it exits, and that peak is somewhat higher (R-50
inference at 800x1333: 1.83 -> 2.14 GB peak RSS).

This holds only in glibc's main arena. A thread other than the main one gets an arena of its own,
made of heaps of at most 64 MiB: there a block above 64 MiB is always a fresh ``mmap`` (whatever
``M_MMAP_MAX`` says) and a heap that empties is unmapped, so a model run in a worker thread (the
HTTP service runs it so) faulted in its memory again on every forward: 520k page faults and 1.4 s
of kernel time per R-50 image at 800x1333, against none in the main thread. So every thread
allocates from the main arena (``M_ARENA_MAX`` 1; the threads here take turns on the model, so its
lock is not contended).

The ``sparse-rcnn`` command applies this at start (opt out with ``SPARSE_RCNN_MALLOC=system``);
library users who own their process can call :func:`keep_freed_memory` themselves.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's <malloc.h>
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def keep_freed_memory() -> bool:
    """Set glibc malloc to serve large blocks from the heap and never trim it, for every thread.

    Returns True when applied, False where there is no glibc ``mallopt`` (macOS, Windows, musl)
    or ``SPARSE_RCNN_MALLOC=system`` asks to leave malloc alone.
    """
    if os.environ.get("SPARSE_RCNN_MALLOC", "").lower() == "system":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked against
    except (OSError, AttributeError, TypeError):  # no mallopt symbol, or no CDLL(None) (Windows)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # mallopt returns 1 on success; a trim threshold of -1 turns trimming off (mallopt(3)).
    # One arena: threads that allocate after this share the main arena's heap (see the module doc).
    applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1 and mallopt(_M_ARENA_MAX, 1) == 1
    log.debug("malloc keeps freed memory: %s", applied)
    return applied
