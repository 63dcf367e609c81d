"""allocator.keep_freed_memory: big tensors reuse freed memory instead of faulting in new pages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocates and frees a 128 MB tensor: 10 warm-up rounds (the heap settles, as over a model's first
# forwards; measured: it grows in the first 1-6 rounds, then never), then prints the page faults of
# 10 more rounds.
_PROBE = """
import resource, sys, torch
from sparse_rcnn.ops import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(10):
    torch.ones(32 * 2**20).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(32 * 2**20).sum()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(mode: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_memory_is_reused_without_page_faults():
    applied, faults = _probe("keep")
    assert applied
    block = 128 * 2**20 // os.sysconf("SC_PAGE_SIZE")  # pages of one fresh 128 MB block
    assert faults < 2 * block, (faults, block)  # at most one late growth of the heap
    _, system_faults = _probe("system")  # the default glibc behaviour this replaces: every round
    assert system_faults > 9 * block, (system_faults, block)


def test_opt_out_leaves_malloc_alone():
    applied, _ = _probe("keep", {"SPARSE_RCNN_MALLOC": "system"})
    assert not applied
