"""allocator.keep_freed_memory: big tensors reuse freed memory instead of faulting in new pages, in
the main thread and in a worker thread (where the HTTP service runs the model)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

# Allocates a 128 MiB tensor, reads glibc's own accounting (mallinfo2) while it lives and after
# it is freed. What is asserted follows from the mallopt settings alone, not from the kernel or
# the load of the machine: the block lives in the heap (not in a private mmap) and, once freed,
# stays in the heap as free memory for the next tensor (not handed back to the kernel).
# The former version counted page faults over 10 rounds; it failed by chance (AssertionError:
# (131072, 32768)) when the heap grew late, which the settings do not forbid.
_PROBE = """
import ctypes, sys, torch
from concurrent.futures import ThreadPoolExecutor
from sparse_rcnn.ops import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks")
        + ("fsmblks", "uordblks", "fordblks", "keepcost")
    ]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] == "keep" else False

def allocate():
    x = torch.ones(32 * 2**20)
    mapped = mallinfo2().hblkhd
    del x
    return mapped, mallinfo2().fordblks

mapped, kept = allocate() if sys.argv[2] == "main" else ThreadPoolExecutor(1).submit(allocate).result()
print(applied, mapped, kept)
"""
BLOCK = 128 * 2**20


def _probe(mode: str, env: dict[str, str] | None = None, thread: str = "main") -> tuple[bool, int, int]:
    """-> (applied, bytes in mmapped blocks while the tensor lives, free bytes kept in the heap after),
    the tensor made in the main thread or in a worker ``thread``."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, thread],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


def _has_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _has_mallinfo2(), reason="glibc >= 2.33 (mallopt, mallinfo2)")
@pytest.mark.parametrize("thread", ["main", "worker"])
def test_freed_memory_is_reused_without_page_faults(thread):
    applied, mapped, kept = _probe("keep", thread=thread)
    assert applied
    assert mapped < BLOCK, mapped  # served from the heap, not from a fresh mmap
    assert kept >= BLOCK, kept  # freed into the heap, not returned: the next tensor reuses its pages
    _, mapped, kept = _probe("system", thread=thread)  # glibc's default, which this replaces: mmap, then munmap
    assert mapped >= BLOCK and kept < BLOCK, (mapped, kept)


def test_opt_out_leaves_malloc_alone():
    applied, _, _ = _probe("keep", {"SPARSE_RCNN_MALLOC": "system"})
    assert not applied
